//! Per-thread pools of relay resources (copy buffers, splice pipes). A tunnel takes one only
//! while bytes move and gives it back when the burst is over, so an idle tunnel holds none.
//! Each worker thread keeps its own pool: no lock on the data path. A task that moved
//! threads gives back to the pool of the thread it is on; the pools stay bounded.

use std::cell::RefCell;

/// A bounded stack of reusable items.
pub struct Pool<T> {
    items: RefCell<Vec<T>>,
    /// Most items kept; more are dropped when given back.
    max: usize,
}

impl<T> Pool<T> {
    pub const fn new(max: usize) -> Self {
        Pool {
            items: RefCell::new(Vec::new()),
            max,
        }
    }

    /// A pooled item, if there is one.
    pub fn take(&self) -> Option<T> {
        self.items.borrow_mut().pop()
    }

    /// Keeps `item` for the next taker, or drops it when the pool is full.
    pub fn give(&self, item: T) {
        let mut items = self.items.borrow_mut();
        if items.len() < self.max {
            items.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_items_and_stays_bounded() {
        let pool = Pool::new(2);
        pool.give(1);
        pool.give(2);
        pool.give(3);
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), None);
    }
}

//! Where lines go: one type over the file (or standard output), the syslog collector, and
//! nothing (a reload turned the log off while connections of the old config still end).

use super::collector::{Collector, Item};
use super::file::FileSink;
use super::Stop;
use crate::config::AccessLogTarget;

pub(super) enum Sink {
    File(FileSink),
    Syslog(Box<Collector>),
    Off,
}

impl Sink {
    pub(super) fn open(target: &AccessLogTarget) -> std::io::Result<Sink> {
        Ok(match target {
            AccessLogTarget::Stdout => Sink::File(FileSink::stdout()?),
            AccessLogTarget::File(path) => Sink::File(FileSink::open(path.clone())?),
            AccessLogTarget::Syslog(config) => {
                Sink::Syslog(Box::new(Collector::new(config.clone())?))
            }
            AccessLogTarget::Off => Sink::Off,
        })
    }

    pub(super) fn name(&self) -> String {
        match self {
            Sink::File(f) => f.name(),
            Sink::Syslog(c) => c.name(),
            Sink::Off => "nothing (off)".into(),
        }
    }

    pub(super) fn is_off(&self) -> bool {
        matches!(self, Sink::Off)
    }

    /// Structured data is made only for a collector.
    pub(super) fn wants_items(&self) -> bool {
        matches!(self, Sink::Syslog(_))
    }

    /// Writes the lines of `buf` (each ending at one of `ends`, with its newline; `items`
    /// for a collector); returns how many are written, and the error that stopped the rest.
    pub(super) async fn write(
        &mut self,
        buf: &[u8],
        ends: &[usize],
        items: &[Item],
        stop: &Stop,
    ) -> (usize, Option<std::io::Error>) {
        match self {
            Sink::File(f) => f.write(buf, ends),
            Sink::Syslog(c) => c.write(buf, items, stop).await,
            Sink::Off => (ends.len(), None),
        }
    }

    /// Makes what was written durable, where that means something.
    pub(super) fn sync(&mut self) -> std::io::Result<()> {
        match self {
            Sink::File(f) => f.sync(),
            _ => Ok(()),
        }
    }

    /// After SIGUSR1: a file continues under its name; other sinks have nothing to do.
    pub(super) fn reopen(&mut self) -> std::io::Result<bool> {
        match self {
            Sink::File(f) => f.reopen().map(|()| f.is_named()),
            _ => Ok(false),
        }
    }

    /// At shutdown: lines sent to a collector and never acknowledged (numbers, and whether
    /// each was a record).
    pub(super) async fn finish(&mut self, stop: &Stop) -> Vec<(u64, bool)> {
        match self {
            Sink::Syslog(c) => c.finish(stop).await,
            _ => Vec::new(),
        }
    }
}

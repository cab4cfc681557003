//! Reading a mapping and a list from disk, writing the generated category files.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::import::{self, Report, Version};
use super::m365;
use super::mapping::Mapping;
use super::render::{self, Origin};

/// The mapping shipped with the allowlists.
pub const SHIPPED_MAPPING: &str = "allowlists/sources/m365-mapping.toml";

pub fn load_mapping(path: &Path) -> anyhow::Result<Mapping> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}", path.display()))
}

/// Imports `list` (default: the copy the mapping names) through the mapping at
/// `mapping_path`, and renders every category file: `(file name, text)`.
pub fn generate(
    mapping_path: &Path,
    list: Option<&Path>,
    version: &Version<'_>,
) -> anyhow::Result<(Report, Vec<(String, String)>)> {
    let mapping = load_mapping(mapping_path)?;
    let list_path: PathBuf = match list {
        Some(p) => p.to_path_buf(),
        None => mapping_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&mapping.source.list),
    };
    let text = std::fs::read_to_string(&list_path)
        .with_context(|| format!("reading {}", list_path.display()))?;
    let endpoints = m365::parse(&text).with_context(|| format!("{}", list_path.display()))?;
    let report = import::import(&mapping, &endpoints, version)?;
    let list_name = file_name(&list_path);
    let mapping_name = format!("sources/{}", file_name(mapping_path));
    let origin = Origin {
        list: &format!("sources/{list_name}"),
        mapping: &mapping_name,
    };
    let files = report
        .files
        .iter()
        .map(|f| (format!("{}.toml", f.name), render::render(f, &origin)))
        .collect();
    Ok((report, files))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

//! Files on disk, the lowest layer every other one may use: writes that never leave half a file.

use std::path::Path;

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half a
/// file and a crash never leaves one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

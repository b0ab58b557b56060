//! Minimal reader and writer for NumPy `.npy` files holding uint8 arrays (format 1.0–3.0,
//! C order), the image format of LS3 datasets.

use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// What can be wrong with an `.npy` file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("not a .npy file (bad magic bytes)")]
    BadMagic,
    #[error("unsupported .npy version {0}.{1}")]
    Version(u8, u8),
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("malformed header: {0}")]
    Header(String),
    #[error("unsupported dtype {0:?}: expected uint8 ('|u1')")]
    Dtype(String),
    #[error("Fortran-ordered arrays are not supported")]
    FortranOrder,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A uint8 array: its shape and its bytes in C order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct U8Array {
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Encodes a uint8 array as `.npy` (format 1.0) bytes.
pub fn encode(shape: &[usize], data: &[u8]) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n' is a multiple of 64
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Decodes `.npy` bytes holding a uint8 array.
pub fn decode(bytes: &[u8]) -> Result<U8Array, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(if bytes.len() < 10 && MAGIC.starts_with(bytes) {
            NpyError::Truncated(format!(
                "{} bytes, shorter than the .npy preamble",
                bytes.len()
            ))
        } else {
            NpyError::BadMagic
        });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(NpyError::Truncated("header length cut off".into()));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(NpyError::Version(major, minor)),
    };
    let header = bytes
        .get(start..start + hlen)
        .ok_or_else(|| NpyError::Truncated(format!("header needs {hlen} bytes")))?;
    let header = std::str::from_utf8(header).map_err(|_| NpyError::Header("not text".into()))?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if !matches!(descr, "|u1" | "<u1" | ">u1" | "u1" | "=u1") {
        return Err(NpyError::Dtype(descr.to_string()));
    }
    if dict_value(header, "fortran_order")?.starts_with("True") {
        return Err(NpyError::FortranOrder);
    }
    let shape = parse_shape(&dict_value(header, "shape")?)?;
    let n: usize = shape.iter().product();
    let body = &bytes[start + hlen..];
    if body.len() < n {
        return Err(NpyError::Truncated(format!(
            "shape {shape:?} needs {n} data bytes, file has {}",
            body.len()
        )));
    }
    Ok(U8Array {
        shape,
        data: body[..n].to_vec(),
    })
}

/// Writes a uint8 array to `path` atomically (temporary file, then rename).
pub fn write(path: &Path, shape: &[usize], data: &[u8]) -> std::io::Result<()> {
    crate::files::write_atomic(path, &encode(shape, data))
}

/// Reads a uint8 array from `path`.
pub fn read(path: &Path) -> Result<U8Array, NpyError> {
    decode(&std::fs::read(path)?)
}

/// The raw text of `key`'s value in the header's Python dict literal.
fn dict_value(header: &str, key: &str) -> Result<String, NpyError> {
    let pat_single = format!("'{key}'");
    let pat_double = format!("\"{key}\"");
    let at = header
        .find(&pat_single)
        .or_else(|| header.find(&pat_double))
        .ok_or_else(|| NpyError::Header(format!("no '{key}' entry")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(|| NpyError::Header(format!("no ':' after '{key}'")))?;
    let rest = rest.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|i| i + 1)
    } else {
        rest.find([',', '}'])
    }
    .ok_or_else(|| NpyError::Header(format!("unterminated value of '{key}'")))?;
    Ok(rest[..end].trim().to_string())
}

fn parse_shape(text: &str) -> Result<Vec<usize>, NpyError> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| NpyError::Header(format!("shape {text} is not a tuple")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| NpyError::Header(format!("bad dimension {s:?}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_header_alignment() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        let bytes = encode(&[2, 3, 4], &data);
        assert_eq!((bytes.len() - data.len()) % 64, 0);
        let arr = decode(&bytes).unwrap();
        assert_eq!(arr.shape, vec![2, 3, 4]);
        assert_eq!(arr.data, data);
        assert_eq!(
            decode(&encode(&[5], &[1, 2, 3, 4, 5])).unwrap().shape,
            vec![5]
        );
    }

    #[test]
    fn reads_numpy_written_header() {
        // exactly what numpy 1.x writes for np.zeros((2, 3, 64, 64), np.uint8)
        let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 64, 64), }";
        let mut h = header.to_string();
        let pad = (10 + h.len() + 1).next_multiple_of(64) - (10 + h.len() + 1);
        h.push_str(&" ".repeat(pad));
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend(std::iter::repeat_n(7u8, 2 * 3 * 64 * 64));
        let arr = decode(&bytes).unwrap();
        assert_eq!(arr.shape, vec![2, 3, 64, 64]);
        assert!(arr.data.iter().all(|&b| b == 7));
    }

    #[test]
    fn truncated_and_wrong_dtype_are_errors() {
        let bytes = encode(&[4, 4], &[0; 16]);
        assert!(matches!(
            decode(&bytes[..bytes.len() - 3]),
            Err(NpyError::Truncated(_))
        ));
        assert!(matches!(decode(&bytes[..5]), Err(NpyError::Truncated(_))));
        assert!(matches!(
            decode(b"PK\x03\x04 not numpy at all"),
            Err(NpyError::BadMagic)
        ));
        let mut f32_file = bytes.clone();
        let at = f32_file.windows(3).position(|w| w == b"|u1").unwrap();
        f32_file[at..at + 3].copy_from_slice(b"<f4");
        assert!(matches!(decode(&f32_file), Err(NpyError::Dtype(_))));
    }
}

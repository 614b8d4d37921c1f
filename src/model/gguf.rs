//! Reader for llama.cpp's GGUF files (spec: ggml/docs/gguf.md, versions 2 and 3).
//!
//! Hand-written rather than taken from a crate: the GGUF readers on crates.io come bundled with
//! whole inference engines (candle-core, llama-cpp bindings), while seft needs only the header,
//! the metadata, the tensor table and dequantization to f32 of the types listed in
//! [`GgmlType`]. The file is memory-mapped and tensors are dequantized one at a time, so a load
//! never holds two copies of the quantized data.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;

use crate::error::SeftError;

const GGUF_MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays nested deeper than this are refused (recursion is bounded; real files nest none).
const MAX_NESTING: usize = 4;
/// The most metadata values (array items included) a file may hold: each costs 32 bytes in
/// memory (128 MiB at most), and the largest tokenizers (vocabulary, scores, types, merges)
/// have about 10^6.
const MAX_METADATA_VALUES: usize = 1 << 22;
/// The fewest bytes one tensor-table entry takes (name length, dims, type, offset).
const MIN_TENSOR_ENTRY_BYTES: usize = 8 + 4 + 4 + 8;

/// A metadata value, as typed in the file.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as an unsigned integer, for any integer type that holds a non-negative value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v as u64),
            GgufValue::U16(v) => Some(v as u64),
            GgufValue::U32(v) => Some(v as u64),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, for float and integer types.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v as f64),
            GgufValue::F64(v) => Some(v),
            GgufValue::I32(v) => Some(v as f64),
            GgufValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// The tensor element types seft can dequantize. Numbers are ggml's `enum ggml_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
    Q4K,
    Q6K,
    BF16,
}

impl GgmlType {
    fn from_id(id: u32) -> Result<Self, String> {
        Ok(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            14 => GgmlType::Q6K,
            30 => GgmlType::BF16,
            other => {
                let name = match other {
                    6 => "Q5_0",
                    7 => "Q5_1",
                    9 => "Q8_1",
                    10 => "Q2_K",
                    11 => "Q3_K",
                    13 => "Q5_K",
                    15 => "Q8_K",
                    16..=23 => "IQ (importance) quantization",
                    24 => "I8",
                    25 => "I16",
                    26 => "I32",
                    27 => "I64",
                    28 => "F64",
                    29 => "IQ1_M",
                    _ => "unknown",
                };
                return Err(format!(
                    "unsupported tensor type {name} (ggml type {other}); supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K"
                ));
            }
        })
    }

    /// (elements per block, bytes per block)
    pub fn block_layout(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q6K => (256, 210),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::BF16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q6K => "Q6_K",
        }
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Shape in row-major order (outermost first), i.e. ggml's `ne` reversed, as PyTorch sees it.
    pub shape: Vec<usize>,
    pub dtype: GgmlType,
    /// Absolute byte offset of the data in the file.
    pub offset: usize,
    pub n_bytes: usize,
}

impl GgufTensorInfo {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed, memory-mapped GGUF file.
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
    mmap: Mmap,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// Cursor over the mapped bytes that reports truncation instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Metadata values read so far (see [`MAX_METADATA_VALUES`]).
    values: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!(
                "truncated file: {what} needs {n} bytes at offset {} but the file has {}",
                self.pos,
                self.bytes.len()
            )),
        }
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        // `take` returned exactly N bytes (or an error), so the conversion cannot fail.
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returns N bytes"))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn len(&mut self, what: &str) -> Result<usize, String> {
        let n = self.u64(what)?;
        // A length larger than the file cannot be honest; refuse before allocating.
        if n > self.bytes.len() as u64 {
            return Err(format!(
                "corrupt {what}: length {n} exceeds the file size {}",
                self.bytes.len()
            ));
        }
        Ok(n as usize)
    }
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.len(what)?;
        let bytes = self.take(n, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not valid UTF-8"))
    }
    fn value(&mut self, type_id: u32, key: &str, depth: usize) -> Result<GgufValue, String> {
        self.values += 1;
        if self.values > MAX_METADATA_VALUES {
            return Err(format!(
                "metadata key '{key}': the metadata holds more than {MAX_METADATA_VALUES} values"
            ));
        }
        Ok(match type_id {
            0 => GgufValue::U8(self.array::<1>(key)?[0]),
            1 => GgufValue::I8(self.array::<1>(key)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => GgufValue::U32(self.u32(key)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => GgufValue::Bool(self.array::<1>(key)?[0] != 0),
            8 => GgufValue::String(self.string(key)?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(format!(
                        "metadata key '{key}' nests arrays deeper than {MAX_NESTING} levels"
                    ));
                }
                let item_type = self.u32(key)?;
                let n = self.len(key)?;
                // Every item takes at least this many bytes of the file, so a count the rest of
                // the file cannot hold is refused before the items are allocated.
                let min_item_bytes = match item_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    _ => 1,
                };
                if n.saturating_mul(min_item_bytes) > self.remaining() {
                    return Err(format!(
                        "metadata key '{key}': an array of {n} items does not fit in the {} bytes left in the file",
                        self.remaining()
                    ));
                }
                let mut items = Vec::with_capacity(n.min(1 << 16));
                for _ in 0..n {
                    items.push(self.value(item_type, key, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(key)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(key)?)),
            other => {
                return Err(format!(
                    "metadata key '{key}' has unknown value type {other}"
                ));
            }
        })
    }
}

impl GgufFile {
    /// Maps and parses the header, metadata and tensor table. Tensor data is read lazily.
    pub fn open(path: &Path) -> Result<Self, SeftError> {
        let file = File::open(path).map_err(|e| SeftError::io(path, e))?;
        // SAFETY: the map is read-only; seft never writes model files while reading them.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| SeftError::io(path, e))?;
        let (version, metadata, tensors) =
            Self::parse(&mmap).map_err(|msg| SeftError::file(path, msg))?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            mmap,
        })
    }

    #[allow(clippy::type_complexity)]
    fn parse(
        bytes: &[u8],
    ) -> Result<(u32, BTreeMap<String, GgufValue>, Vec<GgufTensorInfo>), String> {
        let mut r = Reader {
            bytes,
            pos: 0,
            values: 0,
        };
        let magic = r
            .take(4, "magic")
            .map_err(|_| "not a GGUF file: shorter than its 4-byte magic".to_string())?;
        if magic != GGUF_MAGIC {
            return Err(format!(
                "not a GGUF file: magic is {:?}, expected \"GGUF\"",
                String::from_utf8_lossy(magic)
            ));
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(format!(
                "unsupported GGUF version {version} (supported: 2, 3)"
            ));
        }
        let n_tensors = r.len("tensor count")?;
        let n_kv = r.len("metadata count")?;
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = r.string(&format!("metadata key #{i}"))?;
            let type_id = r.u32(&key)?;
            let value = r.value(type_id, &key, 0)?;
            metadata.insert(key, value);
        }
        if n_tensors.saturating_mul(MIN_TENSOR_ENTRY_BYTES) > r.remaining() {
            return Err(format!(
                "corrupt tensor count: {n_tensors} tensors do not fit in the {} bytes left in the file",
                r.remaining()
            ));
        }
        let mut raw = Vec::with_capacity(n_tensors);
        for i in 0..n_tensors {
            let name = r.string(&format!("tensor name #{i}"))?;
            let n_dims = r.u32(&name)? as usize;
            if n_dims > 4 {
                return Err(format!(
                    "tensor '{name}' has {n_dims} dimensions (GGUF allows at most 4)"
                ));
            }
            let mut ne = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                ne.push(r.len(&name)?);
            }
            let type_id = r.u32(&name)?;
            let dtype = GgmlType::from_id(type_id).map_err(|e| format!("tensor '{name}': {e}"))?;
            let offset = r.u64(&name)?;
            ne.reverse();
            raw.push((name, ne, dtype, offset));
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 20 => a,
                _ => {
                    return Err(format!(
                        "general.alignment must be a power of two up to 2^20, got {v:?}"
                    ));
                }
            },
        };
        let data_start = (r.pos as u64).div_ceil(alignment) * alignment;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, shape, dtype, rel) in raw {
            let n = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .filter(|&n| n <= bytes.len().saturating_mul(8))
                .ok_or_else(|| {
                    format!(
                        "tensor '{name}': shape {shape:?} has more elements than the file can hold"
                    )
                })?;
            if rel % alignment != 0 {
                return Err(format!(
                    "tensor '{name}': offset {rel} is not a multiple of the alignment {alignment}"
                ));
            }
            let (block, block_bytes) = dtype.block_layout();
            if !n.is_multiple_of(block) {
                return Err(format!(
                    "tensor '{name}': {n} elements is not a multiple of the {} block size {block}",
                    dtype.name()
                ));
            }
            let n_bytes = n / block * block_bytes;
            let offset = data_start.checked_add(rel);
            let end = offset.and_then(|o| o.checked_add(n_bytes as u64));
            let (Some(offset), Some(_)) = (offset, end.filter(|&e| e <= bytes.len() as u64)) else {
                return Err(format!(
                    "truncated file: tensor '{name}' at offset {rel} with {n_bytes} bytes ends past the file's {} bytes",
                    bytes.len()
                ));
            };
            tensors.push(GgufTensorInfo {
                name,
                shape,
                dtype,
                offset: offset as usize,
                n_bytes,
            });
        }
        refuse_overlaps(&tensors)?;
        Ok((version, metadata, tensors))
    }

    /// The tensor called `name` (the table has at most one: [`GgufFile::open`] refuses
    /// duplicates).
    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// A required metadata key, or an error naming the file and the key.
    pub fn require(&self, key: &str) -> Result<&GgufValue, SeftError> {
        self.get(key)
            .ok_or_else(|| SeftError::file(&self.path, format!("missing metadata key '{key}'")))
    }

    pub fn require_u64(&self, key: &str) -> Result<u64, SeftError> {
        self.require(key)?.as_u64().ok_or_else(|| {
            SeftError::file(
                &self.path,
                format!("metadata key '{key}' is not an unsigned integer"),
            )
        })
    }

    /// Dequantizes one tensor to f32, in row-major order of [`GgufTensorInfo::shape`].
    pub fn read_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), SeftError> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| SeftError::file(&self.path, format!("missing tensor '{name}'")))?;
        // In range: `parse` checked offset + n_bytes against the file's length.
        let bytes = &self.mmap[info.offset..info.offset + info.n_bytes];
        Ok((
            dequantize(info.dtype, bytes, info.n_elements()),
            info.shape.clone(),
        ))
    }
}

/// Two tensors whose bytes overlap, or two with one name, mean a corrupt table: their data
/// would be read as garbage.
fn refuse_overlaps(tensors: &[GgufTensorInfo]) -> Result<(), String> {
    let mut by_offset: Vec<&GgufTensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        if pair[0].offset + pair[0].n_bytes > pair[1].offset {
            return Err(format!(
                "tensors '{}' and '{}' overlap (bytes {}..{} and {}..)",
                pair[0].name,
                pair[1].name,
                pair[0].offset,
                pair[0].offset + pair[0].n_bytes,
                pair[1].offset
            ));
        }
    }
    let mut names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    if let Some(dup) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("tensor '{}' appears twice in the table", dup[0]));
    }
    Ok(())
}

/// Dequantizes `n` elements of `dtype` stored in `bytes` (whose length the caller has checked),
/// following ggml-quants.c `dequantize_row_*`.
pub fn dequantize(dtype: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    let (block, block_bytes) = dtype.block_layout();
    let f16_at = |b: &[u8], i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
    for (y, b) in out
        .chunks_exact_mut(block)
        .zip(bytes.chunks_exact(block_bytes))
    {
        match dtype {
            GgmlType::F32 => y[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            GgmlType::F16 => y[0] = f16_at(b, 0),
            GgmlType::BF16 => y[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            GgmlType::Q4_0 => {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                for j in 0..16 {
                    y[j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * d;
                    y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
                }
            }
            GgmlType::Q4_1 => {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..20];
                for j in 0..16 {
                    y[j] = (qs[j] & 0x0F) as f32 * d + m;
                    y[j + 16] = (qs[j] >> 4) as f32 * d + m;
                }
            }
            GgmlType::Q8_0 => {
                let d = f16_at(b, 0);
                for j in 0..32 {
                    y[j] = (b[2 + j] as i8) as f32 * d;
                }
            }
            GgmlType::Q4K => dequantize_q4_k(b, y),
            GgmlType::Q6K => dequantize_q6_k(b, y),
        }
    }
    out
}

/// The 6-bit scale and min of sub-block `j` packed in Q4_K's 12 scale bytes.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

fn dequantize_q4_k(b: &[u8], y: &mut [f32]) {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let dmin = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let scales = &b[4..16];
    let qs = &b[16..144];
    for (chunk, (q, y)) in qs.chunks_exact(32).zip(y.chunks_exact_mut(64)).enumerate() {
        let (sc1, m1) = scale_min_k4(2 * chunk, scales);
        let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0F) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

fn dequantize_q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16::from_le_bytes([b[208], b[209]]).to_f32();
    for half_block in 0..2 {
        let ql = &b[64 * half_block..64 * half_block + 64];
        let qh = &b[128 + 32 * half_block..128 + 32 * half_block + 32];
        let sc = &b[192 + 8 * half_block..192 + 8 * half_block + 8];
        let y = &mut y[128 * half_block..128 * half_block + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0F) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

//! Partition payloads: all the elements of one partition of a collection as one
//! byte buffer, never encoded element by element on the wire. Lines of text are
//! the buffer of newline-terminated lines; plain numbers are their little-endian
//! bytes; any other element is its postcard encoding after its length. Code that
//! knows the element type turns records into values ([`decode_element`]) and values
//! into records ([`PartitionBuilder::push`]); code that does not (counting, taking,
//! distinct values, concatenating) works on the records' bytes.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::any::{Any, TypeId};

/// The plain number types a partition stores as raw little-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NumberKind {
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
}

/// Calls `$body!(type, Kind)` for every plain number type.
macro_rules! each_number {
    ($body:ident) => {
        $body!(u8, U8);
        $body!(u16, U16);
        $body!(u32, U32);
        $body!(u64, U64);
        $body!(i8, I8);
        $body!(i16, I16);
        $body!(i32, I32);
        $body!(i64, I64);
        $body!(f32, F32);
        $body!(f64, F64);
    };
}

impl NumberKind {
    /// The bytes of one number.
    pub fn width(self) -> usize {
        match self {
            NumberKind::U8 | NumberKind::I8 => 1,
            NumberKind::U16 | NumberKind::I16 => 2,
            NumberKind::U32 | NumberKind::I32 | NumberKind::F32 => 4,
            NumberKind::U64 | NumberKind::I64 | NumberKind::F64 => 8,
        }
    }

    /// The kind of the number type `T`, if it is one.
    pub fn of<T: 'static>() -> Option<NumberKind> {
        let id = TypeId::of::<T>();
        macro_rules! check {
            ($t:ty, $kind:ident) => {
                if id == TypeId::of::<$t>() {
                    return Some(NumberKind::$kind);
                }
            };
        }
        each_number!(check);
        None
    }
}

/// How a partition's buffer holds its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    /// UTF-8 lines, each followed by `\n` (no element contains `\n`): `String`s.
    Text,
    /// Numbers of one kind, little-endian, back to back.
    Numbers(NumberKind),
    /// Each element's postcard encoding, after its length (a LEB128 varint).
    Encoded,
}

/// One partition's elements in one buffer (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// How `data` holds the elements.
    pub layout: Layout,
    /// The elements' records, back to back.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Default for Partition {
    fn default() -> Self {
        Partition::empty()
    }
}

impl Partition {
    /// A partition without elements.
    pub fn empty() -> Partition {
        Partition {
            layout: Layout::Text,
            data: Vec::new(),
        }
    }

    /// A partition of lines from text already in the [`Layout::Text`] form:
    /// newline-terminated lines (a missing final newline is added; `\r\n` line ends
    /// become `\n`).
    pub fn from_text(mut text: Vec<u8>) -> Partition {
        if memchr::memchr(b'\r', &text).is_some() {
            text = without_carriage_returns(&text);
        }
        if text.last().is_some_and(|&b| b != b'\n') {
            text.push(b'\n');
        }
        Partition {
            layout: Layout::Text,
            data: text,
        }
    }

    /// The partition of `items` (numbers are copied as raw bytes in one go).
    pub fn from_values<T: Serialize + 'static>(items: &[T]) -> Result<Partition, String> {
        let mut builder = PartitionBuilder::default();
        if let Some(kind) = NumberKind::of::<T>() {
            builder.partition.layout = Layout::Numbers(kind);
            for item in items {
                number_bytes(item, &mut builder.partition.data);
            }
            return Ok(builder.finish());
        }
        for item in items {
            builder.push(item)?;
        }
        Ok(builder.finish())
    }

    /// The elements' records (their bytes, in the partition's layout).
    pub fn records(&self) -> Records<'_> {
        Records {
            layout: self.layout,
            rest: &self.data,
        }
    }

    /// How many elements the partition holds.
    pub fn len(&self) -> usize {
        match self.layout {
            Layout::Text => memchr::memchr_iter(b'\n', &self.data).count(),
            Layout::Numbers(kind) => self.data.len() / kind.width(),
            Layout::Encoded => self.records().count(),
        }
    }

    /// Whether the partition holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Every element decoded as a `T`.
    pub fn values<T: DeserializeOwned + 'static>(&self) -> Result<Vec<T>, String> {
        self.records()
            .map(|record| decode_element(self.layout, record))
            .collect()
    }

    /// Appends `other`'s elements. Text meeting encoded strings becomes encoded.
    pub fn append(&mut self, other: &Partition) {
        if other.data.is_empty() {
            return;
        }
        if self.data.is_empty() {
            self.layout = other.layout;
        }
        if self.layout == other.layout {
            self.data.extend_from_slice(&other.data);
            return;
        }
        self.make_encoded();
        let mut other = other.clone();
        other.make_encoded();
        self.data.extend_from_slice(&other.data);
    }

    /// Turns lines of text into encoded strings (for a string with a newline, which
    /// text cannot hold). Numbers and encoded partitions are left as they are.
    fn make_encoded(&mut self) {
        if self.layout != Layout::Text {
            return;
        }
        let mut data = Vec::with_capacity(self.data.len() + self.data.len() / 8);
        for line in self.records() {
            let mut encoded = Vec::with_capacity(line.len() + 5);
            push_varint(line.len(), &mut encoded);
            encoded.extend_from_slice(line);
            push_varint(encoded.len(), &mut data);
            data.extend_from_slice(&encoded);
        }
        self.layout = Layout::Encoded;
        self.data = data;
    }
}

/// `text` with every `\r` that ends a line removed.
fn without_carriage_returns(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut start = 0;
    for at in memchr::memchr_iter(b'\n', text) {
        let end = if at > start && text[at - 1] == b'\r' {
            at - 1
        } else {
            at
        };
        out.extend_from_slice(&text[start..end]);
        out.push(b'\n');
        start = at + 1;
    }
    let tail = &text[start..];
    out.extend_from_slice(tail.strip_suffix(b"\r").unwrap_or(tail));
    out
}

/// The records of a [`Partition`], first to last.
pub struct Records<'a> {
    layout: Layout,
    rest: &'a [u8],
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (record, rest) = match self.layout {
            Layout::Text => {
                let end = memchr::memchr(b'\n', self.rest).unwrap_or(self.rest.len());
                (&self.rest[..end], self.rest.get(end + 1..).unwrap_or(&[]))
            }
            Layout::Numbers(kind) => {
                let width = kind.width().min(self.rest.len());
                self.rest.split_at(width)
            }
            Layout::Encoded => {
                let (len, used) = read_varint(self.rest);
                let end = (used + len).min(self.rest.len());
                (&self.rest[used..end], &self.rest[end..])
            }
        };
        self.rest = rest;
        Some(record)
    }
}

/// Appends `value` as a LEB128 varint.
pub fn push_varint(mut value: usize, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A LEB128 varint at the start of `bytes`: its value and how many bytes it took
/// (a truncated one ends at the end of `bytes`).
fn read_varint(bytes: &[u8]) -> (usize, usize) {
    let mut value = 0usize;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    (value, bytes.len().min(10))
}

/// Appends the little-endian bytes of `value` if it is a plain number.
fn number_bytes<T: 'static>(value: &T, out: &mut Vec<u8>) -> bool {
    let any = value as &dyn Any;
    macro_rules! put {
        ($t:ty, $kind:ident) => {
            if let Some(number) = any.downcast_ref::<$t>() {
                out.extend_from_slice(&number.to_le_bytes());
                return true;
            }
        };
    }
    each_number!(put);
    false
}

/// The element of type `T` in `record`, a record of a partition in `layout`.
pub fn decode_element<T: DeserializeOwned + 'static>(
    layout: Layout,
    record: &[u8],
) -> Result<T, String> {
    let mut slot: Option<T> = None;
    match layout {
        Layout::Text => {
            let Some(text) = (&mut slot as &mut dyn Any).downcast_mut::<Option<String>>() else {
                return Err(format!(
                    "a line of text cannot be read as a {}",
                    std::any::type_name::<T>()
                ));
            };
            let line = std::str::from_utf8(record)
                .map_err(|e| format!("a line is not UTF-8 text: {e}"))?;
            *text = Some(line.to_owned());
        }
        Layout::Numbers(kind) => {
            let any = &mut slot as &mut dyn Any;
            macro_rules! get {
                ($t:ty, $kind:ident) => {
                    if let (NumberKind::$kind, Some(number)) =
                        (kind, any.downcast_mut::<Option<$t>>())
                    {
                        let bytes = record
                            .try_into()
                            .map_err(|_| format!("a truncated {}", stringify!($t)))?;
                        *number = Some(<$t>::from_le_bytes(bytes));
                    }
                };
            }
            each_number!(get);
            if slot.is_none() {
                return Err(format!(
                    "a {kind:?} number cannot be read as a {}",
                    std::any::type_name::<T>()
                ));
            }
        }
        Layout::Encoded => {
            return crate::codec::decode(record).map_err(|e| {
                format!(
                    "cannot decode an element as a {}: {e}",
                    std::any::type_name::<T>()
                )
            })
        }
    }
    Ok(slot.expect("set above"))
}

/// The text of `record` as a `&str`, without a copy: a line of a text partition, or
/// an encoded string.
pub fn text_element(layout: Layout, record: &[u8]) -> Result<&str, String> {
    let bytes = match layout {
        Layout::Text => record,
        Layout::Encoded => {
            let (len, used) = read_varint(record);
            record
                .get(used..used + len)
                .ok_or("a truncated encoded string")?
        }
        Layout::Numbers(kind) => return Err(format!("a {kind:?} number is not text")),
    };
    std::str::from_utf8(bytes).map_err(|e| format!("an element is not UTF-8 text: {e}"))
}

/// Builds a partition from values (or records passed through), choosing the layout
/// from the first element's type.
#[derive(Debug, Default)]
pub struct PartitionBuilder {
    partition: Partition,
}

impl PartitionBuilder {
    /// Appends `value`.
    pub fn push<T: Serialize + 'static>(&mut self, value: &T) -> Result<(), String> {
        let empty = self.partition.data.is_empty();
        if let Some(text) = (value as &dyn Any).downcast_ref::<String>() {
            if self.partition.layout == Layout::Text
                && memchr::memchr(b'\n', text.as_bytes()).is_none()
            {
                self.partition.data.extend_from_slice(text.as_bytes());
                self.partition.data.push(b'\n');
                return Ok(());
            }
            self.partition.make_encoded();
        } else if let Some(kind) = NumberKind::of::<T>() {
            if empty {
                self.partition.layout = Layout::Numbers(kind);
            }
            number_bytes(value, &mut self.partition.data);
            return Ok(());
        }
        if empty {
            self.partition.layout = Layout::Encoded;
        }
        let encoded =
            crate::codec::encode(value).map_err(|e| format!("cannot encode an element: {e}"))?;
        push_varint(encoded.len(), &mut self.partition.data);
        self.partition.data.extend_from_slice(&encoded);
        Ok(())
    }

    /// Appends a record of a partition in `layout`, unchanged when the layouts agree.
    pub fn push_record(&mut self, layout: Layout, record: &[u8]) {
        let data = &mut self.partition.data;
        if data.is_empty() {
            self.partition.layout = layout;
        }
        if self.partition.layout == layout {
            match layout {
                Layout::Text => {
                    data.extend_from_slice(record);
                    data.push(b'\n');
                }
                Layout::Numbers(_) => data.extend_from_slice(record),
                Layout::Encoded => {
                    push_varint(record.len(), data);
                    data.extend_from_slice(record);
                }
            }
            return;
        }
        let single = Partition::from_text(record.to_vec());
        self.partition.append(&single);
    }

    /// The partition built.
    pub fn finish(self) -> Partition {
        self.partition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_numbers_and_other_values_round_trip_in_their_layouts() {
        let lines = vec!["a b".to_string(), String::new(), "c".to_string()];
        let text = Partition::from_values(&lines).unwrap();
        assert_eq!(
            (text.layout, text.data.as_slice()),
            (Layout::Text, &b"a b\n\nc\n"[..])
        );
        assert_eq!(text.len(), 3);
        assert_eq!(text.values::<String>().unwrap(), lines);

        let numbers = Partition::from_values(&[1.5f64, -2.0]).unwrap();
        assert_eq!(numbers.layout, Layout::Numbers(NumberKind::F64));
        assert_eq!(numbers.data.len(), 16);
        assert_eq!(numbers.values::<f64>().unwrap(), vec![1.5, -2.0]);
        assert!(numbers
            .values::<u64>()
            .unwrap_err()
            .contains("cannot be read as a u64"));

        let pairs = vec![(1u8, "x".to_string()), (2, "y\nz".to_string())];
        let encoded = Partition::from_values(&pairs).unwrap();
        assert_eq!(encoded.layout, Layout::Encoded);
        assert_eq!(encoded.len(), 2);
        assert_eq!(encoded.values::<(u8, String)>().unwrap(), pairs);
    }

    #[test]
    fn a_string_with_a_newline_turns_text_into_encoded_strings() {
        let values = vec![
            "one".to_string(),
            "two\nlines".to_string(),
            "three".to_string(),
        ];
        let partition = Partition::from_values(&values).unwrap();
        assert_eq!(partition.layout, Layout::Encoded);
        assert_eq!(partition.values::<String>().unwrap(), values);
        let texts: Vec<&str> = partition
            .records()
            .map(|r| text_element(partition.layout, r).unwrap())
            .collect();
        assert_eq!(texts, ["one", "two\nlines", "three"]);
        let mut joined = Partition::from_text(b"x\n".to_vec());
        joined.append(&partition);
        assert_eq!(joined.values::<String>().unwrap()[..2], ["x", "one"]);
    }

    #[test]
    fn text_gets_its_final_newline_and_loses_carriage_returns() {
        assert_eq!(Partition::from_text(b"a\r\nb\r\n".to_vec()).data, b"a\nb\n");
        assert_eq!(Partition::from_text(b"a\nb".to_vec()).data, b"a\nb\n");
        assert_eq!(Partition::from_text(b"a\r\nb\r".to_vec()).data, b"a\nb\n");
        assert_eq!(Partition::from_text(Vec::new()).len(), 0);
        assert_eq!(Partition::from_text(b"\n\n".to_vec()).len(), 2);
    }

    #[test]
    fn a_text_element_read_as_a_number_is_a_clear_error() {
        let text = Partition::from_text(b"12\n".to_vec());
        assert!(text
            .values::<u64>()
            .unwrap_err()
            .contains("line of text cannot be read as a u64"));
    }
}

//! Ingest's hot path in Rust (`driftline.consumers.ingest.native` imports it): an event whose
//! JSON is in the form driftline's own encoder writes (compact, numbers as orjson prints them,
//! strings without escapes) is read straight into what ingest keeps of it, without a Python
//! object per feature.
//!
//! `PredictionScanner.scan` returns, per message, a `ScannedPrediction` or None, and
//! `scan_outcomes` an `OutcomeRecord` or None. None means "not sure": the message takes the
//! Python path (msgspec, then pydantic), which decides and explains every reject. So the
//! scanners accept a subset of what that path accepts, with the same values, and the waiting
//! prediction's labeled JSON is byte for byte what `pending_prediction` writes: it is spliced
//! from the input's own bytes, which is only right because every number and string accepted
//! is already in the form orjson would write (checked, not assumed). A scanned prediction holds
//! that JSON and its features in Rust, no Python object but its ids and model, and waits in the
//! join store as itself; its prediction is read again from that JSON where a column needs it,
//! and made a Python object only when Python asks. `labeled_records` writes
//! the labeled events of joined pairs the same way (None where orjson must), and
//! `split_consumed` splits a poll by input partition in one pass. `scanned_columns` and
//! `labeled_columns` turn a batch of scanned predictions, or of joined rows, into the columns
//! the pane sketches take, in one pass each (None where the Python path must build them).

use std::hash::Hasher;

use rustc_hash::{FxHashMap as HashMap, FxHasher};
use std::fmt::Write as _;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};
use sha2::{Digest, Sha256};

const NAME_MAX_CHARS: usize = 256;
const MAX_FEATURES: usize = 512;
const STRING_CACHE_MAX: usize = 4096;
const CACHED_STRING_MAX_BYTES: usize = 64;
// orjson writes floats in fixed notation (what this accepts) inside this range; outside it, or
// for any token with an exponent, the Python path decides.
const FIXED_MIN: f64 = 1e-4;
const FIXED_MAX: f64 = 1e15;

enum Number {
    Int(i64),
    Float(f64),
}

/// A read position in one message; every method returns None for anything not canonical.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek()? == byte {
            self.at += 1;
            Some(())
        } else {
            None
        }
    }

    fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// A string without escapes or control characters: its text, quotes excluded.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = &self.bytes[self.at..];
        let mut high = 0u8;
        let mut length = None;
        for (index, &byte) in rest.iter().enumerate() {
            if byte == b'"' {
                length = Some(index);
                break;
            }
            if byte == b'\\' || byte < 0x20 {
                return None;
            }
            high |= byte;
        }
        let raw = &rest[..length?];
        let text = if high < 0x80 {
            // SAFETY: ASCII is UTF-8.
            unsafe { std::str::from_utf8_unchecked(raw) }
        } else {
            std::str::from_utf8(raw).ok()?
        };
        self.at += raw.len() + 1;
        Some(text)
    }

    /// A `NonEmptyStr`: 1 to 256 characters.
    fn name(&mut self) -> Option<&'a str> {
        let text = self.string()?;
        let chars = if text.is_ascii() {
            text.len()
        } else {
            text.chars().count()
        };
        (1..=NAME_MAX_CHARS).contains(&chars).then_some(text)
    }

    fn null(&mut self) -> Option<()> {
        if self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            Some(())
        } else {
            None
        }
    }

    /// A number as orjson writes it: an int of at most 18 digits, or a float in fixed notation.
    fn number(&mut self, scratch: &mut String) -> Option<Number> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        self.digits();
        let int_digits = self.at - int_start;
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return None;
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let fraction_start = self.at;
            self.digits();
            if self.at == fraction_start {
                return None;
            }
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            return None;
        }
        // SAFETY: the grammar above let only ASCII digits, `-` and `.` through.
        let token = unsafe { std::str::from_utf8_unchecked(&self.bytes[start..self.at]) };
        if is_float {
            canonical_float(token, scratch).map(Number::Float)
        } else {
            canonical_int(token).map(Number::Int)
        }
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    /// Past one value of any kind, checked only enough to find its end (its own parse checks it).
    fn skip_value(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        let mut depth = 0usize;
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.string()?;
                    if depth == 0 {
                        break;
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    if depth == 0 {
                        break;
                    }
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        break;
                    }
                }
                b',' if depth == 0 => break,
                _ => {}
            }
            self.at += 1;
        }
        (self.at > start).then(|| &self.bytes[start..self.at])
    }
}

fn canonical_int(token: &str) -> Option<i64> {
    if token == "-0" || token.len() > 18 {
        return None;
    }
    token.parse().ok()
}

/// The float a fixed-notation token stands for, if orjson would write that float as this token.
///
/// A token of at most 15 significant digits reads back from its float unchanged (DBL_DIG), so
/// it is that float's shortest form when it has no needless zero, and its digits over a power
/// of ten give the float exactly rounded (Clinger's fast path: both exact in a double). Longer
/// ones are parsed and printed to check.
fn canonical_float(token: &str, scratch: &mut String) -> Option<f64> {
    let unsigned = token.strip_prefix('-').unwrap_or(token);
    let negative = unsigned.len() != token.len();
    let (integer, fraction) = unsigned.split_once('.')?;
    if integer == "0" && fraction.bytes().all(|digit| digit == b'0') {
        return (fraction == "0").then_some(if negative { -0.0 } else { 0.0 });
    }
    if fraction.len() > 1 && fraction.ends_with('0') {
        return None;
    }
    let significant = if integer == "0" {
        fraction.trim_start_matches('0').len()
    } else if fraction == "0" {
        integer.len()
    } else {
        integer.len() + fraction.len()
    };
    if significant <= 15 {
        let digits = integer.bytes().chain(fraction.bytes());
        let mantissa = digits.fold(0u64, |sum, digit| sum * 10 + u64::from(digit - b'0'));
        if mantissa < 1 << 53 && fraction.len() < POW10.len() {
            let magnitude = mantissa as f64 / POW10[fraction.len()];
            return (FIXED_MIN..FIXED_MAX)
                .contains(&magnitude)
                .then_some(if negative { -magnitude } else { magnitude });
        }
    }
    let value: f64 = token.parse().ok()?;
    if !(FIXED_MIN..FIXED_MAX).contains(&value.abs()) {
        return None;
    }
    scratch.clear();
    write!(scratch, "{value}").ok()?; // the shortest digits that read back as the same float
    if !scratch.contains('.') {
        scratch.push_str(".0");
    }
    (scratch == token).then_some(value)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Where a model's monitored features go: numeric ones into a row of floats, categorical ones
/// into a row of their bins' ids, both in the reference profile's order.
struct Layout {
    slots: HashMap<String, Slot>,
    numeric: usize,
    categories: Vec<CategoryBins>,
    /// The feature keys of the last event read with this layout that broke the order before,
    /// with their slots: a producer writes its features in one order, so the next event's keys
    /// are matched against these by position, without hashing (see `read_features`).
    order: Vec<(Box<[u8]>, Option<Slot>)>,
}

/// A categorical feature's bins, as `CategoricalBins.ids` numbers them with ``none_apart``.
struct CategoryBins {
    ids: HashMap<String, isize>,
    unseen: isize,
    null: isize,
}

impl CategoryBins {
    fn id(&self, text: &str) -> isize {
        self.ids.get(text).copied().unwrap_or(self.unseen)
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Numeric(usize),
    Categorical(usize),
}

/// What ingest keeps of a prediction read by the scanner, until it is sketched and joined.
#[pyclass(frozen, module = "driftline_native")]
struct ScannedPrediction {
    #[pyo3(get)]
    event_id: Py<PyString>,
    #[pyo3(get)]
    ts: f64,
    #[pyo3(get)]
    model: Py<PyString>,
    #[pyo3(get)]
    request_id: Py<PyString>,
    /// The labeled event's JSON from the model to the prediction, and its variant and entity id
    /// when set, as `pending_prediction` writes them (spliced from this event's bytes): once
    /// sketched, the scanned prediction itself waits in the join store for its outcome.
    body: Box<[u8]>,
    tail: Box<[u8]>,
    /// Where the prediction's JSON starts in ``body``: read again, natively, when needed.
    prediction_at: usize,
    /// The profile's numeric features, in its order (NaN: null or missing). `scanned_columns`
    /// reads them natively: no Python object per event holds them.
    numeric: Vec<f64>,
    /// The profile's categorical features as their bins' ids, in its order (as
    /// `CategoricalBins.ids` with ``none_apart`` gives them: null or missing is ``n_bins``).
    categorical: Vec<isize>,
    #[pyo3(get)]
    generation: u64,
}

#[pymethods]
impl ScannedPrediction {
    /// The numeric features as native float64 bytes (for tests and inspection).
    #[getter]
    fn numeric<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, plain_bytes(&self.numeric))
    }

    /// The categorical features' bin ids as native intp bytes (for tests and inspection).
    #[getter]
    fn categorical<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, plain_bytes(&self.categorical))
    }

    #[getter]
    fn labeled_body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.body)
    }

    #[getter]
    fn labeled_tail<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.tail)
    }

    /// The decoded prediction, made on each call: a float, or the `ClassPrediction` as its
    /// JSON object (the Python paths read it; the native ones read the JSON).
    #[getter]
    fn prediction(&self, py: Python<'_>) -> PyResult<PyObject> {
        Ok(match self.predicted() {
            Predicted::Float(value) => PyFloat::new(py, value).into_any().unbind(),
            Predicted::Class(entries) => {
                let dict = PyDict::new(py);
                for (key, value) in entries {
                    match value {
                        ClassValue::Label(label) => dict.set_item(key, label)?,
                        ClassValue::NoProbabilities => dict.set_item(key, py.None())?,
                        ClassValue::Probabilities(probabilities) => {
                            let inner = PyDict::new(py);
                            for (label, probability) in probabilities {
                                inner.set_item(label, probability)?;
                            }
                            dict.set_item(key, inner)?;
                        }
                    }
                }
                dict.into_any().unbind()
            }
        })
    }
}

impl ScannedPrediction {
    /// The prediction, read again from ``body`` (checked when scanned, so it reads).
    fn predicted(&self) -> Predicted<'_> {
        read_prediction(&self.body[self.prediction_at..], &mut String::new())
            .expect("a prediction checked when scanned")
    }

    /// A class prediction's label and its probability of ``label`` (or of its own class when
    /// None), as `_prediction_columns` reads them: NaN where the probabilities or that class are
    /// absent; None when the prediction is not a class.
    fn class_score(&self, label: Option<&str>) -> Option<(&str, f64)> {
        let Predicted::Class(entries) = self.predicted() else {
            return None;
        };
        let own = entries.iter().find_map(|(_, value)| match value {
            ClassValue::Label(label) => Some(*label),
            _ => None,
        })?;
        let scored = label.unwrap_or(own);
        let probability = entries
            .iter()
            .find_map(|(_, value)| match value {
                ClassValue::Probabilities(probabilities) => probabilities
                    .iter()
                    .find_map(|(class, p)| (*class == scored).then_some(*p)),
                _ => None,
            })
            .unwrap_or(f64::NAN);
        Some((own, probability))
    }
}

/// The raw parts of one canonical prediction event, before any Python object is made.
#[derive(Default)]
struct Parts<'a> {
    event_id: Option<&'a str>,
    ts: Option<f64>,
    model: Option<&'a [u8]>,
    model_version: Option<&'a [u8]>,
    request_id: Option<&'a str>,
    request_id_raw: Option<&'a [u8]>,
    features: Option<&'a [u8]>,
    prediction: Option<&'a [u8]>,
    variant: Option<Option<&'a [u8]>>,
    entity_id: Option<Option<&'a [u8]>>,
    schema_version: bool,
}

/// Reads canonical prediction events for one set of reference profiles (see the module docs).
#[pyclass(module = "driftline_native")]
struct PredictionScanner {
    layouts: HashMap<String, Layout>,
    generation: u64,
    strings: HashMap<String, Py<PyString>>,
    scratch: String,
}

#[pymethods]
impl PredictionScanner {
    /// ``layouts``: model -> (numeric feature names, categorical features), each in the
    /// profile's order, a categorical feature as (name, bin id per category, the unseen bin's
    /// id, the null id); ``generation`` is stamped on every `ScannedPrediction`.
    #[new]
    #[allow(clippy::type_complexity)]
    fn new(
        layouts: std::collections::HashMap<
            String,
            (
                Vec<String>,
                Vec<(
                    String,
                    std::collections::HashMap<String, isize>,
                    isize,
                    isize,
                )>,
            ),
        >,
        generation: u64,
    ) -> Self {
        let layouts = layouts
            .into_iter()
            .map(|(model, (numeric, categorical))| {
                let mut slots = HashMap::default();
                for (index, name) in numeric.iter().enumerate() {
                    slots.insert(name.clone(), Slot::Numeric(index));
                }
                let mut categories = Vec::with_capacity(categorical.len());
                for (index, (name, ids, unseen, null)) in categorical.into_iter().enumerate() {
                    slots.insert(name, Slot::Categorical(index));
                    categories.push(CategoryBins {
                        ids: ids.into_iter().collect(),
                        unseen,
                        null,
                    });
                }
                (
                    model,
                    Layout {
                        slots,
                        numeric: numeric.len(),
                        categories,
                        order: Vec::new(),
                    },
                )
            })
            .collect();
        PredictionScanner {
            layouts,
            generation,
            strings: HashMap::default(),
            scratch: String::new(),
        }
    }

    /// One `ScannedPrediction` or None per value (None also for a null value, one longer than
    /// ``max_payload_bytes`` or one whose ``ts`` is after ``max_ts``: the Python path rejects those).
    fn scan<'py>(
        &mut self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
        max_payload_bytes: usize,
        max_ts: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for item in values.iter() {
            let scanned = match item.downcast::<PyBytes>() {
                Ok(value) if value.as_bytes().len() <= max_payload_bytes => {
                    self.scan_one(py, value, max_ts)?
                }
                _ => None,
            };
            match scanned {
                Some(scanned) => out.append(scanned)?,
                None => out.append(py.None())?,
            }
        }
        Ok(out)
    }
}

impl PredictionScanner {
    fn scan_one<'py>(
        &mut self,
        py: Python<'py>,
        value: &Bound<'py, PyBytes>,
        max_ts: f64,
    ) -> PyResult<Option<Bound<'py, ScannedPrediction>>> {
        let bytes = value.as_bytes();
        let Some(parts) = self.top_level(bytes) else {
            return Ok(None);
        };
        let (
            Some(event_id),
            Some(ts),
            Some(model_raw),
            Some(model_version),
            Some(request_id),
            Some(features),
            Some(prediction),
        ) = (
            parts.event_id,
            parts.ts,
            parts.model,
            parts.model_version,
            parts.request_id,
            parts.features,
            parts.prediction,
        )
        else {
            return Ok(None);
        };
        if ts > max_ts {
            return Ok(None);
        }
        let model =
            std::str::from_utf8(&model_raw[1..model_raw.len() - 1]).expect("checked as UTF-8");
        let layout = self.layouts.get_mut(model);
        let mut numeric = vec![f64::NAN; layout.as_ref().map_or(0, |l| l.numeric)];
        let mut categorical: Vec<isize> = layout.as_ref().map_or(Vec::new(), |l| {
            l.categories.iter().map(|bins| bins.null).collect()
        });
        if read_features(
            features,
            layout,
            &mut numeric,
            &mut categorical,
            &mut self.scratch,
        )
        .is_none()
        {
            return Ok(None);
        }
        if read_prediction(prediction, &mut self.scratch).is_none() {
            return Ok(None);
        }

        let mut body = Vec::with_capacity(features.len() + prediction.len() + 96);
        body.extend_from_slice(b"\"model\":");
        body.extend_from_slice(model_raw);
        body.extend_from_slice(b",\"model_version\":");
        body.extend_from_slice(model_version);
        body.extend_from_slice(b",\"request_id\":");
        body.extend_from_slice(parts.request_id_raw.expect("set with request_id"));
        body.extend_from_slice(b",\"features\":");
        body.extend_from_slice(features);
        body.extend_from_slice(b",\"prediction\":");
        let prediction_at = body.len();
        body.extend_from_slice(prediction);
        let mut tail = Vec::new();
        for (name, field) in [
            (&b"variant"[..], parts.variant),
            (&b"entity_id"[..], parts.entity_id),
        ] {
            if let Some(Some(raw)) = field {
                tail.extend_from_slice(b",\"");
                tail.extend_from_slice(name);
                tail.extend_from_slice(b"\":");
                tail.extend_from_slice(raw);
            }
        }
        let scanned = ScannedPrediction {
            event_id: PyString::new(py, event_id).unbind(),
            ts,
            model: self.string(py, model),
            request_id: PyString::new(py, request_id).unbind(),
            body: body.into_boxed_slice(),
            tail: tail.into_boxed_slice(),
            prediction_at,
            numeric,
            categorical,
            generation: self.generation,
        };
        Ok(Some(Bound::new(py, scanned)?))
    }

    /// The top-level object: its known keys once each, in any order, nothing else.
    fn top_level<'a>(&mut self, bytes: &'a [u8]) -> Option<Parts<'a>> {
        let mut cursor = Cursor::new(bytes);
        let mut parts = Parts::default();
        cursor.eat(b'{')?;
        loop {
            let key = cursor.string()?;
            cursor.eat(b':')?;
            let start = cursor.at;
            match key {
                "schema_version" if !parts.schema_version => {
                    match cursor.number(&mut self.scratch)? {
                        Number::Int(1) => parts.schema_version = true,
                        _ => return None,
                    }
                }
                "event_id" if parts.event_id.is_none() => parts.event_id = Some(cursor.name()?),
                "ts" if parts.ts.is_none() => {
                    parts.ts = Some(match cursor.number(&mut self.scratch)? {
                        Number::Int(int) => int as f64,
                        Number::Float(float) => float,
                    })
                }
                "model" if parts.model.is_none() => {
                    cursor.name()?;
                    parts.model = Some(&bytes[start..cursor.at]);
                }
                "model_version" if parts.model_version.is_none() => {
                    cursor.name()?;
                    parts.model_version = Some(&bytes[start..cursor.at]);
                }
                "request_id" if parts.request_id.is_none() => {
                    parts.request_id = Some(cursor.name()?);
                    parts.request_id_raw = Some(&bytes[start..cursor.at]);
                }
                "features" if parts.features.is_none() => {
                    parts.features = Some(cursor.skip_value()?)
                }
                "prediction" if parts.prediction.is_none() => {
                    parts.prediction = Some(cursor.skip_value()?)
                }
                "variant" if parts.variant.is_none() => {
                    parts.variant = Some(optional_name(&mut cursor, bytes)?)
                }
                "entity_id" if parts.entity_id.is_none() => {
                    parts.entity_id = Some(optional_name(&mut cursor, bytes)?)
                }
                _ => return None, // unknown or repeated: the Python path decides
            }
            if cursor.eat(b',').is_none() {
                break;
            }
        }
        cursor.eat(b'}')?;
        cursor.at_end().then_some(parts)
    }

    /// A Python string for a short text seen often (model names, labels), made once.
    fn string(&mut self, py: Python<'_>, text: &str) -> Py<PyString> {
        if let Some(cached) = self.strings.get(text) {
            return cached.clone_ref(py);
        }
        let made = PyString::new(py, text).unbind();
        if text.len() <= CACHED_STRING_MAX_BYTES && self.strings.len() < STRING_CACHE_MAX {
            self.strings.insert(text.to_owned(), made.clone_ref(py));
        }
        made
    }
}

/// Checks the features object and writes the monitored ones into their slots: numeric values
/// as floats, categorical ones as their bins' ids (``categorical`` comes filled with the null ids).
///
/// Keys are matched by position against the layout's `order` while they follow it: distinct
/// there, so distinct here, and their slots known. From the first key that does not, every
/// key is hashed to find repeats and looked up; such an event, once read, becomes the order.
fn read_features(
    raw: &[u8],
    mut layout: Option<&mut Layout>,
    numeric: &mut [f64],
    categorical: &mut [isize],
    scratch: &mut String,
) -> Option<()> {
    let mut cursor = Cursor::new(raw);
    cursor.eat(b'{')?;
    if cursor.eat(b'}').is_some() {
        return cursor.at_end().then_some(());
    }
    let mut on_order = true;
    let mut seen: Vec<u64> = Vec::new(); // off the order: the hashes of every key read
    let mut read: Vec<(Box<[u8]>, Option<Slot>)> = Vec::new(); // off the order: the keys, the next order
    let mut position = 0;
    loop {
        let key = cursor.string()?;
        let order = layout.as_ref().map_or(&[][..], |l| &l.order[..]);
        let slot = match order.get(position) {
            Some((known, slot)) if on_order && **known == *key.as_bytes() => *slot,
            _ => {
                if on_order {
                    on_order = false; // the keys before this one followed the order
                    seen.extend(order[..position].iter().map(|(known, _)| fx_hash(known)));
                    if layout.is_some() {
                        read.extend(order[..position].iter().cloned());
                    }
                }
                let hash = fx_hash(key.as_bytes());
                if seen.len() >= MAX_FEATURES || seen.contains(&hash) {
                    return None; // a repeated key would not be written back as it was read (nor, rarely, a collision)
                }
                seen.push(hash);
                let slot = layout.as_ref().and_then(|l| l.slots.get(key).copied());
                if layout.is_some() {
                    read.push((key.as_bytes().into(), slot));
                }
                slot
            }
        };
        position += 1;
        cursor.eat(b':')?;
        match cursor.peek()? {
            b'"' => {
                let text = cursor.string()?;
                match slot {
                    Some(Slot::Categorical(index)) => {
                        let bins = &layout
                            .as_ref()
                            .expect("a slot comes from the layout")
                            .categories;
                        categorical[index] = bins[index].id(text);
                    }
                    Some(Slot::Numeric(_)) => return None, // to_float parses strings: Python decides
                    None => {}
                }
            }
            b'n' => cursor.null()?,
            _ => {
                let number = match cursor.number(scratch)? {
                    Number::Int(int) => int as f64,
                    Number::Float(float) => float,
                };
                match slot {
                    Some(Slot::Numeric(index)) => numeric[index] = number,
                    Some(Slot::Categorical(_)) => return None, // to_str would print it: Python decides
                    None => {}
                }
            }
        }
        if cursor.eat(b',').is_none() {
            break;
        }
    }
    cursor.eat(b'}')?;
    if !cursor.at_end() {
        return None;
    }
    if let Some(layout) = layout.as_mut() {
        if !on_order {
            layout.order = read;
        }
    }
    Some(())
}

/// Numbers whose bytes are all value: no padding.
trait Plain: Copy {}
impl Plain for f64 {}
impl Plain for isize {}
impl Plain for u32 {}

/// Numbers as their native bytes, as numpy's ``frombuffer`` reads them.
fn plain_bytes<T: Plain>(values: &[T]) -> &[u8] {
    // SAFETY: `Plain` types have no padding; the slice borrows `values`.
    unsafe {
        std::slice::from_raw_parts(values.as_ptr().cast::<u8>(), std::mem::size_of_val(values))
    }
}

fn fx_hash(bytes: &[u8]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

enum ClassValue<'a> {
    Label(&'a str),
    NoProbabilities,
    Probabilities(Vec<(&'a str, f64)>),
}

/// A prediction in the fast path's form: a float, or a class (its object's entries, in order).
enum Predicted<'a> {
    Float(f64),
    Class(Vec<(&'a str, ClassValue<'a>)>),
}

/// A float prediction, or a `ClassPrediction` object (label, probabilities in [0, 1]); None
/// for any other form (an int, which Python would write back as a float; a ranking; ...).
fn read_prediction<'a>(raw: &'a [u8], scratch: &mut String) -> Option<Predicted<'a>> {
    let mut cursor = Cursor::new(raw);
    if cursor.peek() != Some(b'{') {
        return match cursor.number(scratch) {
            Some(Number::Float(value)) if cursor.at_end() => Some(Predicted::Float(value)),
            _ => None,
        };
    }
    class_prediction(&mut cursor, scratch).map(Predicted::Class)
}

fn class_prediction<'a>(
    cursor: &mut Cursor<'a>,
    scratch: &mut String,
) -> Option<Vec<(&'a str, ClassValue<'a>)>> {
    cursor.eat(b'{')?;
    let mut entries: Vec<(&'a str, ClassValue<'a>)> = Vec::with_capacity(2);
    let mut has_label = false;
    loop {
        let key = cursor.string()?;
        cursor.eat(b':')?;
        if entries.iter().any(|(seen, _)| *seen == key) {
            return None;
        }
        match key {
            "label" => {
                entries.push((key, ClassValue::Label(cursor.name()?)));
                has_label = true;
            }
            "probabilities" if cursor.peek()? == b'n' => {
                cursor.null()?;
                entries.push((key, ClassValue::NoProbabilities));
            }
            "probabilities" => entries.push((
                key,
                ClassValue::Probabilities(probabilities(cursor, scratch)?),
            )),
            _ => return None, // a ranking, or an unknown key
        }
        if cursor.eat(b',').is_none() {
            break;
        }
    }
    cursor.eat(b'}')?;
    (has_label && cursor.at_end()).then_some(entries)
}

fn probabilities<'a>(cursor: &mut Cursor<'a>, scratch: &mut String) -> Option<Vec<(&'a str, f64)>> {
    cursor.eat(b'{')?;
    let mut probabilities: Vec<(&'a str, f64)> = Vec::new();
    if cursor.eat(b'}').is_some() {
        return Some(probabilities);
    }
    loop {
        let label = cursor.string()?;
        cursor.eat(b':')?;
        let Number::Float(value) = cursor.number(scratch)? else {
            return None;
        };
        if !(0.0..=1.0).contains(&value) || probabilities.iter().any(|(seen, _)| *seen == label) {
            return None;
        }
        probabilities.push((label, value));
        if cursor.eat(b',').is_none() {
            break;
        }
    }
    cursor.eat(b'}')?;
    Some(probabilities)
}

fn optional_name<'a>(cursor: &mut Cursor<'a>, bytes: &'a [u8]) -> Option<Option<&'a [u8]>> {
    let start = cursor.at;
    if cursor.peek()? == b'n' {
        cursor.null()?;
        return Some(None);
    }
    cursor.name()?;
    Some(Some(&bytes[start..cursor.at]))
}

/// `labeled_columns_from_rows` of classification or regression for the joined rows
/// (event id, prediction, outcome) at ``positions`` (native intp), when every one of them is in
/// the usual form: a class with a string label and a string outcome, or a float prediction and
/// a float outcome. Classification gives the true and predicted labels as UCS-4 (what numpy's
/// ``<U`` holds: the code points, and the width of the longest, at least 1), and with
/// ``positive`` the probabilities of that class (float64), or None when a row has none
/// (as `labeled_columns_from_rows` gives it); regression gives float64 outcomes and predictions.
/// None where the Python path must decide.
#[pyfunction]
#[pyo3(signature = (rows, positions, classification, positive))]
fn labeled_columns<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    positions: &[u8],
    classification: bool,
    positive: Option<&str>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let width = std::mem::size_of::<isize>();
    let mut truth: Vec<String> = Vec::with_capacity(positions.len() / width);
    let mut predicted: Vec<String> = Vec::with_capacity(positions.len() / width);
    let mut scores = positive.map(|_| Vec::with_capacity(positions.len() / width));
    let mut true_values = Vec::new();
    let mut predicted_values = Vec::new();
    for position in positions.chunks_exact(width) {
        let index = isize::from_ne_bytes(position.try_into().expect("one isize"));
        let row = rows.get_item(usize::try_from(index)?)?;
        let row = row.downcast::<PyTuple>()?;
        let (prediction, outcome) = (row.get_item(1)?, row.get_item(2)?);
        let outcome = outcome.getattr(intern!(py, "outcome"))?;
        let scanned = prediction.downcast_exact::<ScannedPrediction>().ok();
        if !classification {
            let value = match scanned.map(|scanned| scanned.get().predicted()) {
                Some(Predicted::Float(value)) => Some(value),
                Some(Predicted::Class(_)) => None,
                None => prediction
                    .getattr(intern!(py, "prediction"))?
                    .downcast_exact::<PyFloat>()
                    .ok()
                    .map(|value| value.value()),
            };
            match (value, outcome.downcast_exact::<PyFloat>()) {
                (Some(value), Ok(outcome)) => {
                    predicted_values.push(value);
                    true_values.push(outcome.value());
                }
                _ => return Ok(None),
            }
            continue;
        }
        let Ok(outcome) = outcome.downcast_exact::<PyString>() else {
            return Ok(None);
        };
        let (label, probability) = match scanned {
            Some(scanned) => match scanned.get().class_score(positive) {
                // an absent probability (NaN here) leaves the batch without scores there
                Some((label, probability)) => (
                    label.to_owned(),
                    (!probability.is_nan()).then_some(probability),
                ),
                None => return Ok(None),
            },
            None => {
                match python_class(&prediction.getattr(intern!(py, "prediction"))?, positive)? {
                    Some(read) => read,
                    None => return Ok(None),
                }
            }
        };
        if let Some(values) = scores.as_mut() {
            match probability {
                Some(value) => values.push(value),
                None => scores = None, // a row without it: no scores for the batch
            }
        }
        truth.push(outcome.to_str()?.to_owned());
        predicted.push(label);
    }
    if !classification {
        return Ok(Some(PyTuple::new(
            py,
            [
                PyByteArray::new(py, plain_bytes(&true_values)).into_any(),
                PyByteArray::new(py, plain_bytes(&predicted_values)).into_any(),
            ],
        )?));
    }
    let (true_codes, true_width) = ucs4(&truth);
    let (predicted_codes, predicted_width) = ucs4(&predicted);
    let scores = optional_floats(py, scores);
    Ok(Some(PyTuple::new(
        py,
        [
            PyByteArray::new(py, plain_bytes(&true_codes)).into_any(),
            true_width.into_pyobject(py)?.into_any(),
            PyByteArray::new(py, plain_bytes(&predicted_codes)).into_any(),
            predicted_width.into_pyobject(py)?.into_any(),
            scores.into_bound(py),
        ],
    )?))
}

/// A class prediction read from its Python object, as `labeled_columns_from_rows` reads it: its
/// label, and its probability of ``positive`` (None where absent); None where Python must decide.
#[allow(clippy::type_complexity)]
fn python_class(
    prediction: &Bound<'_, PyAny>,
    positive: Option<&str>,
) -> PyResult<Option<(String, Option<f64>)>> {
    let py = prediction.py();
    let Ok(class) = prediction.downcast_exact::<PyDict>() else {
        return Ok(None);
    };
    let Some(label) = class.get_item(intern!(py, "label"))? else {
        return Ok(None);
    };
    let Ok(label) = label.downcast_exact::<PyString>() else {
        return Ok(None);
    };
    let mut probability = None;
    if let Some(positive) = positive {
        if let Some(probabilities) = class.get_item(intern!(py, "probabilities"))? {
            match probabilities.downcast_exact::<PyDict>() {
                Ok(probabilities) => {
                    if let Some(value) = probabilities.get_item(positive)? {
                        let Ok(value) = value.downcast_exact::<PyFloat>() else {
                            return Ok(None); // None is NaN there, an int a float: Python decides
                        };
                        probability = Some(value.value());
                    }
                }
                Err(_) if probabilities.is_none() => {}
                Err(_) => return Ok(None),
            }
        }
    }
    Ok(Some((label.to_str()?.to_owned(), probability)))
}

/// Float64 values as native bytes (a bytearray, for a writable numpy view), or None.
fn optional_floats(py: Python<'_>, values: Option<Vec<f64>>) -> PyObject {
    values.map_or_else(
        || py.None(),
        |values| {
            PyByteArray::new(py, plain_bytes(&values))
                .into_any()
                .unbind()
        },
    )
}

/// Strings as numpy's ``<U{width}`` holds them: each one's code points, zero-padded to the
/// longest (at least one, as numpy makes an array of empty strings).
fn ucs4(texts: &[String]) -> (Vec<u32>, usize) {
    let width = texts
        .iter()
        .map(|text| text.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut codes = vec![0u32; texts.len() * width];
    for (row, text) in texts.iter().enumerate() {
        for (at, char) in text.chars().enumerate() {
            codes[row * width + at] = u32::from(char);
        }
    }
    (codes, width)
}

/// The columns `columns_from_scanned` needs of predictions scanned with the layouts of
/// ``generation``, in one pass without a Python object per event: their times (float64), their
/// event ids' CRC-32 (uint32, as `zlib.crc32` gives it: what `event_keys` hashes), and the
/// numeric and categorical features feature-major (one row of ``len(records)`` per feature, as
/// the sketches take them). Then the
/// prediction column when every prediction has the form of the fast path: with
/// ``numeric_prediction``, a float each (float64); else a class each (its label, in a list), and
/// when ``scored``, the probability of ``positive`` (a binary classifier's positive class), or
/// of the row's own class when None, each (float64, NaN where absent); None for a column the
/// Python path must build. None for all of it when a record is not a
/// `ScannedPrediction` of that generation: the Python path reads those records again.
#[pyfunction]
#[pyo3(signature = (records, generation, n_numeric, n_categorical, numeric_prediction, scored, positive))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)] // the Python call's arguments, one by one
fn scanned_columns<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    generation: u64,
    n_numeric: usize,
    n_categorical: usize,
    numeric_prediction: bool,
    scored: bool,
    positive: Option<&str>,
) -> PyResult<
    Option<(
        Bound<'py, PyByteArray>,
        Bound<'py, PyByteArray>,
        Bound<'py, PyByteArray>,
        Bound<'py, PyByteArray>,
        PyObject,
        PyObject,
    )>,
> {
    let n = records.len();
    let mut ts = Vec::with_capacity(n);
    let mut crc = Vec::with_capacity(n);
    let mut numeric = vec![0.0f64; n * n_numeric];
    let mut categorical = vec![0isize; n * n_categorical];
    let mut floats = numeric_prediction.then(|| Vec::with_capacity(n));
    let mut labels = (!numeric_prediction).then(|| Vec::with_capacity(n));
    let mut scores = (scored && !numeric_prediction).then(|| Vec::with_capacity(n));
    for (row, item) in records.iter().enumerate() {
        let Ok(record) = item.downcast_exact::<ScannedPrediction>() else {
            return Ok(None);
        };
        let record = record.get();
        if record.generation != generation {
            return Ok(None);
        }
        ts.push(record.ts);
        crc.push(crc32(record.event_id.bind(py).to_str()?.as_bytes()));
        if record.numeric.len() != n_numeric || record.categorical.len() != n_categorical {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a scanned prediction of another layout",
            ));
        }
        for (feature, &value) in record.numeric.iter().enumerate() {
            numeric[feature * n + row] = value;
        }
        for (feature, &id) in record.categorical.iter().enumerate() {
            categorical[feature * n + row] = id;
        }
        if let Some(values) = floats.as_mut() {
            match record.predicted() {
                Predicted::Float(value) => values.push(value),
                Predicted::Class(_) => floats = None,
            }
        } else if let Some(texts) = labels.as_mut() {
            let Some((label, probability)) = record.class_score(positive) else {
                (labels, scores) = (None, None);
                continue;
            };
            texts.push(label.to_owned());
            if let Some(values) = scores.as_mut() {
                values.push(probability);
            }
        }
    }
    let prediction = match (floats, labels) {
        (Some(values), _) => PyByteArray::new(py, plain_bytes(&values))
            .into_any()
            .unbind(),
        (None, Some(labels)) => PyList::new(py, labels)?.into_any().unbind(),
        (None, None) => py.None(),
    };
    let score = optional_floats(py, scores);
    Ok(Some((
        PyByteArray::new(py, plain_bytes(&ts)),
        PyByteArray::new(py, plain_bytes(&crc)),
        PyByteArray::new(py, plain_bytes(&numeric)),
        PyByteArray::new(py, plain_bytes(&categorical)),
        prediction,
        score,
    )))
}

/// CRC-32 (IEEE, reflected), as `zlib.crc32` computes it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc = CRC32_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
};

/// One poll's messages split by input partition in one pass, as ingest takes them: per
/// (is it the predictions topic, partition), the values, offsets and messages, in order; per
/// input, whether its last message was an error (a partition-EOF notice, or an error the caller
/// raises), inputs in the order they first appear; and the messages with an error, in order.
/// Inputs are kept in Rust until the end: a poll holds thousands of messages of a few inputs.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn split_consumed<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyList>,
    predictions_topic: &str,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>, Bound<'py, PyList>)> {
    let errors = PyList::empty(py);
    // per input in order of first appearance: its key, whether its last message was an error, its lists
    let mut seen: Vec<((bool, i64), bool, Option<[Bound<'py, PyList>; 3]>)> = Vec::new();
    let mut current = usize::MAX; // the input of the message before: polls come in runs of one input
    for message in messages.iter() {
        let topic = message.call_method0(intern!(py, "topic"))?;
        let is_predictions = topic
            .downcast::<PyString>()
            .map_or(Ok(false), |t| t.to_str().map(|t| t == predictions_topic))?;
        let partition: i64 = message
            .call_method0(intern!(py, "partition"))?
            .extract()
            .unwrap_or(-1);
        let key = (is_predictions, partition);
        if current >= seen.len() || seen[current].0 != key {
            current = match seen.iter().position(|(seen_key, _, _)| *seen_key == key) {
                Some(index) => index,
                None => {
                    seen.push((key, false, None));
                    seen.len() - 1
                }
            };
        }
        let input = &mut seen[current];
        if !message.call_method0(intern!(py, "error"))?.is_none() {
            input.1 = true;
            errors.append(&message)?;
            continue;
        }
        input.1 = false;
        let [values, offsets, kept] = input
            .2
            .get_or_insert_with(|| [PyList::empty(py), PyList::empty(py), PyList::empty(py)]);
        values.append(message.call_method0(intern!(py, "value"))?)?;
        offsets.append(message.call_method0(intern!(py, "offset"))?)?;
        kept.append(&message)?;
    }
    let inputs = PyDict::new(py);
    let ends = PyDict::new(py);
    for (key, ended, lists) in seen {
        ends.set_item(key, ended)?;
        if let Some([values, offsets, kept]) = lists {
            inputs.set_item(key, (values, offsets, kept))?;
        }
    }
    Ok((inputs, ends, errors))
}

/// Outcome events in driftline's own JSON form, as ``record_type`` (`OutcomeRecord`) objects,
/// or None per value where the Python path must decide (as for predictions).
#[pyfunction]
fn scan_outcomes<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
    record_type: &Bound<'py, PyAny>,
    max_payload_bytes: usize,
    max_ts: f64,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    let mut models: HashMap<&str, Bound<'py, PyString>> = HashMap::default();
    let mut scratch = String::new();
    let bytes_values: Vec<Option<Bound<'py, PyBytes>>> = values
        .iter()
        .map(|item| item.downcast_into::<PyBytes>().ok())
        .collect();
    for value in &bytes_values {
        let parts = match value {
            Some(value) if value.as_bytes().len() <= max_payload_bytes => {
                outcome_parts(value.as_bytes(), &mut scratch)
            }
            _ => None,
        };
        let Some(parts) = parts.filter(|parts| parts.ts <= max_ts) else {
            out.append(py.None())?;
            continue;
        };
        let model = models
            .entry(parts.model)
            .or_insert_with(|| PyString::new(py, parts.model))
            .clone();
        let outcome = match parts.outcome {
            OutcomeValue::Float(value) => PyFloat::new(py, value).into_any(),
            OutcomeValue::Text(text) => PyString::new(py, text).into_any(),
        };
        let record = record_type.call1((
            PyString::new(py, parts.event_id),
            parts.ts,
            PyString::new(py, parts.request_id),
            model,
            outcome,
        ))?;
        out.append(record)?;
    }
    Ok(out)
}

enum OutcomeValue<'a> {
    Float(f64),
    Text(&'a str),
}

struct OutcomeParts<'a> {
    event_id: &'a str,
    ts: f64,
    request_id: &'a str,
    model: &'a str,
    outcome: OutcomeValue<'a>,
}

/// The fields of a canonical outcome event: known keys once each, in any order, nothing else.
fn outcome_parts<'a>(bytes: &'a [u8], scratch: &mut String) -> Option<OutcomeParts<'a>> {
    let mut cursor = Cursor::new(bytes);
    let (mut event_id, mut ts, mut request_id, mut model, mut outcome) =
        (None, None, None, None, None);
    let mut schema_version = false;
    cursor.eat(b'{')?;
    loop {
        let key = cursor.string()?;
        cursor.eat(b':')?;
        match key {
            "schema_version" if !schema_version => match cursor.number(scratch)? {
                Number::Int(1) => schema_version = true,
                _ => return None,
            },
            "event_id" if event_id.is_none() => event_id = Some(cursor.name()?),
            "ts" if ts.is_none() => {
                ts = Some(match cursor.number(scratch)? {
                    Number::Int(int) => int as f64,
                    Number::Float(float) => float,
                })
            }
            "request_id" if request_id.is_none() => request_id = Some(cursor.name()?),
            "model" if model.is_none() => model = Some(cursor.name()?),
            "outcome" if outcome.is_none() => {
                outcome = Some(if cursor.peek()? == b'"' {
                    OutcomeValue::Text(cursor.string()?)
                } else {
                    match cursor.number(scratch)? {
                        Number::Float(value) => OutcomeValue::Float(value),
                        Number::Int(_) => return None, // converted to a float by the Python path: let it
                    }
                })
            }
            _ => return None,
        }
        if cursor.eat(b',').is_none() {
            break;
        }
    }
    cursor.eat(b'}')?;
    if !cursor.at_end() {
        return None;
    }
    Some(OutcomeParts {
        event_id: event_id?,
        ts: ts?,
        request_id: request_id?,
        model: model?,
        outcome: outcome?,
    })
}

/// The labeled events of joined (waiting prediction, outcome) pairs, as `labeled_id` and
/// `labeled_json` write them: the rows (labeled event id, prediction, outcome), and (model key,
/// JSON) records; then, for the labeled sketches, the outcomes' times (float64) and the models.
/// A record is None where the Python path must write it: an outcome that is not a float or a
/// plain string, or a float that orjson might print otherwise (outside fixed notation, or 16-17
/// digits, where the shortest digits can tie and Rust and Python break the tie apart).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn labeled_records<'py>(
    py: Python<'py>,
    pairs: &Bound<'py, PyList>,
) -> PyResult<(
    Bound<'py, PyList>,
    Bound<'py, PyList>,
    Bound<'py, PyByteArray>,
    Bound<'py, PyList>,
)> {
    let rows = PyList::empty(py);
    let records = PyList::empty(py);
    let models = PyList::empty(py);
    let mut outcome_times = Vec::with_capacity(pairs.len());
    let mut json = Vec::with_capacity(1024);
    for pair in pairs.iter() {
        let (prediction, outcome) = pair.extract::<(Bound<'py, PyAny>, Bound<'py, PyAny>)>()?;
        let outcome_id = attribute::<PyString>(&outcome, intern!(py, "event_id"))?;
        let outcome_id = outcome_id.to_str()?;
        let outcome_ts: f64 = outcome.getattr(intern!(py, "ts"))?.extract()?;
        let outcome_value = outcome.getattr(intern!(py, "outcome"))?;
        // a scanned prediction's fields are read in Rust, any other's (a `PendingPrediction`) from Python
        let (prediction_id, model, ts, body_object, tail_object);
        let (body, tail): (&[u8], &[u8]);
        if let Ok(scanned) = prediction.downcast_exact::<ScannedPrediction>() {
            let scanned = scanned.get();
            (prediction_id, model) = (
                scanned.event_id.bind(py).clone(),
                scanned.model.bind(py).clone(),
            );
            (ts, body, tail) = (scanned.ts, &scanned.body, &scanned.tail);
        } else {
            prediction_id = attribute::<PyString>(&prediction, intern!(py, "event_id"))?;
            model = attribute::<PyString>(&prediction, intern!(py, "model"))?;
            ts = prediction.getattr(intern!(py, "ts"))?.extract()?;
            body_object = attribute::<PyBytes>(&prediction, intern!(py, "labeled_body"))?;
            tail_object = attribute::<PyBytes>(&prediction, intern!(py, "labeled_tail"))?;
            (body, tail) = (body_object.as_bytes(), tail_object.as_bytes());
        }
        let mut digest = Sha256::new();
        digest.update(b"labeled\x1f");
        digest.update(prediction_id.to_str()?.as_bytes());
        digest.update(b"\x1f");
        digest.update(outcome_id.as_bytes());
        let mut id = String::with_capacity(32);
        for byte in &digest.finalize()[..16] {
            id.push(HEX[usize::from(byte >> 4)] as char);
            id.push(HEX[usize::from(byte & 15)] as char);
        }
        json.clear();
        let labeled = Labeled {
            id: &id,
            ts,
            outcome_ts,
            body,
            tail,
        };
        if labeled.write(&mut json, &outcome_value)?.is_some() {
            let key = PyBytes::new(py, model.to_str()?.as_bytes());
            records.append((key, PyBytes::new(py, &json)))?;
        } else {
            records.append(py.None())?;
        }
        rows.append((PyString::new(py, &id), prediction, outcome))?;
        models.append(model)?;
        outcome_times.push(outcome_ts);
    }
    Ok((
        rows,
        records,
        PyByteArray::new(py, plain_bytes(&outcome_times)),
        models,
    ))
}

/// ``object.name``, which must be a ``T``.
fn attribute<'py, T: pyo3::type_object::PyTypeCheck>(
    object: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, T>> {
    Ok(object.getattr(name)?.downcast_into::<T>()?)
}

/// What a labeled event is written from, bar its outcome.
struct Labeled<'a> {
    id: &'a str,
    ts: f64,
    outcome_ts: f64,
    body: &'a [u8],
    tail: &'a [u8],
}

impl Labeled<'_> {
    /// The labeled event's JSON as `labeled_json` writes it, or None where orjson must.
    fn write(&self, json: &mut Vec<u8>, outcome: &Bound<'_, PyAny>) -> PyResult<Option<()>> {
        json.extend_from_slice(b"{\"schema_version\":1,\"event_id\":\"");
        json.extend_from_slice(self.id.as_bytes());
        json.extend_from_slice(b"\",\"ts\":");
        if write_float(json, self.ts).is_none() {
            return Ok(None);
        }
        json.extend_from_slice(b",\"outcome_ts\":");
        if write_float(json, self.outcome_ts).is_none() {
            return Ok(None);
        }
        json.push(b',');
        json.extend_from_slice(self.body);
        json.extend_from_slice(b",\"outcome\":");
        if let Ok(value) = outcome.downcast_exact::<PyFloat>() {
            if write_float(json, value.value()).is_none() {
                return Ok(None);
            }
        } else if let Ok(text) = outcome.downcast_exact::<PyString>() {
            let text = text.to_str()?;
            if text
                .bytes()
                .any(|byte| byte == b'"' || byte == b'\\' || byte < 0x20)
            {
                return Ok(None); // orjson would escape it
            }
            json.push(b'"');
            json.extend_from_slice(text.as_bytes());
            json.push(b'"');
        } else {
            return Ok(None);
        }
        json.extend_from_slice(self.tail);
        json.push(b'}');
        Ok(Some(()))
    }
}

/// A float as orjson writes it, where that is sure: fixed notation and at most 15 digits.
///
/// The shortest decimal is found directly: the first number of decimals ``k`` whose rounding
/// ``m / 10^k`` reads back as the same float (exactly, by Clinger's fast path) with ``m`` under
/// 10^15. With at most 15 digits no other decimal reads back as that float (DBL_DIG), so these
/// are the digits orjson (shortest round trip) prints.
fn write_float(json: &mut Vec<u8>, value: f64) -> Option<()> {
    if value == 0.0 {
        json.extend_from_slice(if value.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
        return Some(());
    }
    let magnitude = value.abs();
    if !(FIXED_MIN..FIXED_MAX).contains(&magnitude) {
        return None;
    }
    let (mantissa, decimals) = (0..=19).find_map(|decimals: usize| {
        let scaled = (magnitude * POW10[decimals]).round();
        (scaled < 1e15 && scaled / POW10[decimals] == magnitude)
            .then_some((scaled as u64, decimals))
    })?;
    if value < 0.0 {
        json.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut rest = mantissa;
    let mut length = 0;
    while rest > 0 || length <= decimals {
        digits[length] = b'0' + (rest % 10) as u8;
        rest /= 10;
        length += 1;
    }
    digits[..length].reverse(); // at least one digit before the point, as many after as decimals
    json.extend_from_slice(&digits[..length - decimals]);
    json.push(b'.');
    if decimals == 0 {
        json.push(b'0');
    } else {
        json.extend_from_slice(&digits[length - decimals..length]);
    }
    Some(())
}

/// Test hook: the float a token stands for if orjson would write that float as the token.
#[pyfunction]
fn canonical_number(token: &str) -> Option<f64> {
    let mut cursor = Cursor::new(token.as_bytes());
    let mut scratch = String::new();
    match cursor.number(&mut scratch)? {
        _ if !cursor.at_end() => None,
        Number::Int(int) => Some(int as f64),
        Number::Float(float) => Some(float),
    }
}

#[pymodule]
fn driftline_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PredictionScanner>()?;
    module.add_class::<ScannedPrediction>()?;
    module.add_function(wrap_pyfunction!(canonical_number, module)?)?;
    module.add_function(wrap_pyfunction!(labeled_columns, module)?)?;
    module.add_function(wrap_pyfunction!(labeled_records, module)?)?;
    module.add_function(wrap_pyfunction!(scan_outcomes, module)?)?;
    module.add_function(wrap_pyfunction!(scanned_columns, module)?)?;
    module.add_function(wrap_pyfunction!(split_consumed, module)?)?;
    Ok(())
}

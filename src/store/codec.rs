//! Value encoding for the tables: JSON, so a stored record can be read with any tool while
//! debugging, and fields can be added with serde defaults.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("stored types always serialise")
}

pub fn decode<T: DeserializeOwned>(table: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("a record in {table} does not decode: {e}")))
}

/// `encode` as text, for a database that takes JSON as a string parameter.
pub fn encode_str<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored types always serialise")
}

/// The bytes of a row read back as text, decoded.
pub fn decode_str<T: DeserializeOwned>(table: &str, text: &str) -> Result<T, StoreError> {
    decode(table, text.as_bytes())
}

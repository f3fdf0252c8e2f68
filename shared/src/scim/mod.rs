//! SCIM 2.0 (RFC 7643/7644): schemas, resource normalisation, filters, PATCH, responses.

pub mod filter;
pub mod patch;
pub mod resource;
pub mod schema;
pub mod text;

//! An S3 client for a blob store on an S3 bucket (AWS, or any server that speaks its API
//! with path-style requests and SigV4: SeaweedFS, MinIO, Ceph RGW).

pub mod client;
pub mod sigv4;

//! Registry client for the OCI distribution protocol: manifests, blobs, auth, mirrors.

"""BR35H data pipeline: scan and verify, near-duplicate groups, split manifests, the crop."""

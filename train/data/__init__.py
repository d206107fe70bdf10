"""Data pipeline: sources (BR35H, Nickparvar), scan and verify, near-duplicate groups (within and across sources), split manifests, the crop."""

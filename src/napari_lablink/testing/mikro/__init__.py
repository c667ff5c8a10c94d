"""The mikro stand-in: both GraphQL generations over one state, data on the S3 stand-in."""

"""The S3 stand-in: moto's S3 behind a gateway that checks credentials, logs requests and
injects faults, as a real datalayer does."""

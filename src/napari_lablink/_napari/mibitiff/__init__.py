"""Local MIBItiff files: reader, writer and the layers <-> file mapping."""

"""The results table: schema, Parquet read/write, the append-only part layout."""

"""The columnar store: Parquet files (local or S3) + a catalog and a hot table in the database."""

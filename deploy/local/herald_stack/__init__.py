"""Herald local stack: real Kafka, PostgreSQL, Weaviate and SMTP as local processes."""

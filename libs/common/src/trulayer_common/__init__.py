"""Code shared by every TruLayer service: settings, wire schemas, Kafka, ClickHouse, Redis."""

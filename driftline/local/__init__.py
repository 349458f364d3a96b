"""Local development services: a real Kafka broker and an MLflow server, no Docker."""

"""Kafka in/out, message types, decode/validate, DLQ, generator.

The only package that imports confluent_kafka.
"""

"""Neo4j: driver, schema, projection writer, readers, export.

The only package that imports the neo4j driver.
"""

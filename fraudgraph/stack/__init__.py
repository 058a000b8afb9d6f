"""The no-Docker local stack: real Kafka (KRaft), Neo4j Community and PostgreSQL.

Kafka and Neo4j run from jars resolved from Maven Central (recipes in
``compose/local-stack/``), PostgreSQL from the OS packages as a private
cluster; all state lives under the data folder.  See README "How the stack works".
"""

from pathlib import Path

#: compose/local-stack in the checkout: poms, config templates, recorded jar lists.
RECIPES = Path(__file__).resolve().parents[2] / "compose" / "local-stack"

// name: schema
// purpose: constraints and indexes of the fraud graph; idempotent (IF NOT EXISTS); statements separated by semicolons
// params: none
// returns: nothing
CREATE CONSTRAINT user_id IF NOT EXISTS FOR (n:User) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT card_id IF NOT EXISTS FOR (n:Card) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT site_id IF NOT EXISTS FOR (n:Site) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT device_id IF NOT EXISTS FOR (n:Device) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT ip_id IF NOT EXISTS FOR (n:IP) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT transaction_id IF NOT EXISTS FOR (n:Transaction) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT projection_cursor_id IF NOT EXISTS FOR (n:ProjectionCursor) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT fraud_label_id IF NOT EXISTS FOR (n:FraudLabel) REQUIRE n.id IS UNIQUE;
CREATE INDEX transaction_event_ms IF NOT EXISTS FOR (n:Transaction) ON (n.event_ms);
CREATE INDEX fraud_label_site IF NOT EXISTS FOR (n:FraudLabel) ON (n.site_id);
CREATE INDEX projection_cursor_topic IF NOT EXISTS FOR (n:ProjectionCursor) ON (n.topic)

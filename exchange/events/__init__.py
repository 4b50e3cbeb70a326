"""Partner events (decision 0017): the outbox the database fills in the transaction of
each change, webhook endpoints, and their signed deliveries."""

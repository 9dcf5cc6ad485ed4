"""The PostgreSQL sink: record mapping, statement building and the commit transaction."""

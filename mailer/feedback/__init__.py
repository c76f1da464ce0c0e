"""SES feedback: events normalised from either notification shape, and applying them to the store."""

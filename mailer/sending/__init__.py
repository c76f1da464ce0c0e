"""Sending: the message template, transports (outbox, SMTP, SES), pacing, and campaigns."""

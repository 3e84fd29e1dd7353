"""The SMTP side: listeners (aiosmtpd) and reinjection into the MTA."""

"""Member messaging: SMS (console, locmem, Twilio) and email (Django's email backend)."""

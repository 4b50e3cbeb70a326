"""The coalition points exchange: service core and composition root."""

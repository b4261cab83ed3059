"""The OpenAI dialect of Tailor's HTTP API: chat completions in and out, OpenAI's error envelope."""

"""The HTTP APIs (Bedrock and OpenAI dialects) and what they share: request signing, keys."""

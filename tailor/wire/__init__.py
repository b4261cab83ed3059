"""The wire formats of inference, as pure converters: request bodies in, ``ChatRequest`` out, and
a ``Completion`` back into each dialect's response body and stream events.

InvokeModel's native bodies (``invoke`` and ``bodies``), Converse (``converse``) and OpenAI chat
completions (``chat_body``) are read strictly (``request_json``) and validated by pydantic models
(``body_models``) that name every problem by field. They live below the API because more than the
API speaks them: batch inference jobs answer InvokeModel bodies from a file, and invocation logs
are read back as training data. No I/O and no services here.
"""

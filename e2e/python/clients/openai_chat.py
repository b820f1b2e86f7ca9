"""openai's AzureOpenAI pointed at entraproxy with a dummy key: one chat
completion; prints the reply or the exception's text as JSON.

    python openai_chat.py ENDPOINT [ORIGIN]

max_retries=0: the exception's text is the same after the default two
retries, which would only add their back-off to the suite."""

import json
import sys

import openai
from openai import AzureOpenAI

headers = {"Origin": sys.argv[2]} if len(sys.argv) > 2 else None
client = AzureOpenAI(azure_endpoint=sys.argv[1], api_key="dummy-key-ENTRAPROXY-E2E", api_version="2024-10-21",
                     max_retries=0, default_headers=headers)
try:
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello"}])
    print(json.dumps({"reply": r.choices[0].message.content, "model": r.model, "error": ""}))
except openai.APIError as e:
    print(json.dumps({"reply": "", "error": f"{type(e).__name__}: {e}"}))

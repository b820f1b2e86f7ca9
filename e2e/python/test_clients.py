"""Python clients of the README's recipe table, each with the one line a user
changes (the endpoint, and a dummy key where the client insists on one),
through bin/entraproxy to the fake Azure. Each asserts the fake's answer and
what the upstream saw: the service path, one bearer token the fake issued to
this proxy, no key anywhere."""

import pytest
from azure.core.credentials import AzureKeyCredential

from harness import DUMMY_KEY, assert_clean_upstream, service_requests

OPENAI_REPLY = "Hello from the fake Azure OpenAI deployment."


def test_openai_azure_openai(clean, proxy):
    from openai import AzureOpenAI

    client = AzureOpenAI(azure_endpoint=proxy.http, api_key=DUMMY_KEY, api_version="2024-10-21")  # the line
    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello"}])
    assert r.choices[0].message.content == OPENAI_REPLY
    chunks = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == OPENAI_REPLY
    reqs = service_requests(clean)
    assert [(r["method"], r["path"], r["query"]) for r in reqs] == [
        ("POST", "/openai/deployments/gpt-4o/chat/completions", "api-version=2024-10-21")] * 2
    assert_clean_upstream(reqs, proxy.issued())


def test_langchain_azure_chat_openai(clean, proxy):
    from langchain_openai import AzureChatOpenAI

    llm = AzureChatOpenAI(azure_endpoint=proxy.http, api_key=DUMMY_KEY, api_version="2024-10-21", azure_deployment="gpt-4o")  # the line
    assert llm.invoke("Hello").content == OPENAI_REPLY
    reqs = service_requests(clean)
    assert [(r["path"], r["query"]) for r in reqs] == [("/openai/deployments/gpt-4o/chat/completions", "api-version=2024-10-21")]
    assert_clean_upstream(reqs, proxy.issued())


def test_azure_ai_translation_text(clean, proxy):
    from azure.ai.translation.text import TextTranslationClient

    # The client adds /translator/text/v<api-version> only to an endpoint whose
    # name says cognitiveservices; with the proxy's address, the path is given.
    client = TextTranslationClient(endpoint=proxy.http + "/translator/text/v2026-06-06", credential=AzureKeyCredential(DUMMY_KEY))  # the line
    result = client.translate(body=["Hello, world"], to_language=["de", "fr"])
    assert [(t.language, t.text) for t in result[0].translations] == [("de", "[de] Hello, world"), ("fr", "[fr] Hello, world")]
    reqs = service_requests(clean)
    assert [(r["path"], r["query"]) for r in reqs] == [("/translator/text/v2026-06-06/translate", "api-version=2026-06-06")]
    assert_clean_upstream(reqs, proxy.issued())


def test_azure_ai_textanalytics(clean, proxy):
    from azure.ai.textanalytics import TextAnalyticsClient

    client = TextAnalyticsClient(endpoint=proxy.http, credential=AzureKeyCredential(DUMMY_KEY))  # the line
    langs = client.detect_language(["Guten Morgen", "Hello world"])
    assert [(d.primary_language.iso6391_name, d.primary_language.name) for d in langs] == [("de", "German"), ("en", "English")]
    moods = client.analyze_sentiment(["I love this proxy", "I hate waiting"])
    assert [d.sentiment for d in moods] == ["positive", "negative"]
    reqs = service_requests(clean)
    assert [(r["path"], r["query"]) for r in reqs] == [("/language/:analyze-text", "api-version=2023-04-01")] * 2
    assert_clean_upstream(reqs, proxy.issued())


@pytest.mark.parametrize("client", ["translation", "textanalytics"])
def test_key_clients_straight_at_the_fake_fail(client, clean, fake):
    """Negative control: the same clients pointed straight at the fake get
    its 401 for the key they send."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as err:
        if client == "translation":
            from azure.ai.translation.text import TextTranslationClient
            TextTranslationClient(endpoint=fake.url + "/translator/text/v2026-06-06",
                                  credential=AzureKeyCredential(DUMMY_KEY)).translate(body=["x"], to_language=["de"])
        else:
            from azure.ai.textanalytics import TextAnalyticsClient
            TextAnalyticsClient(endpoint=fake.url, credential=AzureKeyCredential(DUMMY_KEY)).detect_language(["x"])
    assert err.value.status_code == 401
    assert [r["reject"] for r in service_requests(clean)] == ["key_header"]

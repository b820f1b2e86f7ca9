// The Azure SDK for JavaScript clients and LangChain, used as their READMEs
// show them with a dummy key: the only change for the proxy is the endpoint
// (and allowInsecureConnection, which every @azure/* and @azure-rest/*
// client needs for a plain http:// endpoint). Kept apart from clients.js so
// that the other test files do not load them.

import TextTranslationClient from "@azure-rest/ai-translation-text";
import { TextAnalysisClient } from "@azure/ai-language-text";
import { AzureKeyCredential } from "@azure/core-auth";
import { AzureChatOpenAI } from "@langchain/openai";
import { DUMMY_KEY } from "./harness.js";

/**
 * The Translator text client (@azure-rest/ai-translation-text) as its
 * README shows it, with a dummy key; endpoint is the proxy plus
 * /translator/text/v3.0, which the client adds itself only to hosts named
 * *cognitiveservices*.
 */
export function translator(endpoint, { allowInsecureConnection = true, key = DUMMY_KEY } = {}) {
  return TextTranslationClient(endpoint, { key }, { allowInsecureConnection, retryOptions: { maxRetries: 0 } });
}

/** The Language text analysis client (@azure/ai-language-text) with a dummy key. */
export function textAnalysis(endpoint, { allowInsecureConnection = true, key = DUMMY_KEY } = {}) {
  return new TextAnalysisClient(endpoint, new AzureKeyCredential(key), { allowInsecureConnection, retryOptions: { maxRetries: 0 } });
}

/** LangChain's AzureChatOpenAI (@langchain/openai) with a dummy key. */
export function langchainAzure(endpoint, key = DUMMY_KEY) {
  return new AzureChatOpenAI({
    azureOpenAIEndpoint: endpoint,
    azureOpenAIApiKey: key,
    azureOpenAIApiDeploymentName: "gpt-4o",
    azureOpenAIApiVersion: "2024-10-21",
    maxRetries: 0,
  });
}

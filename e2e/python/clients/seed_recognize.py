# The seed's configuration (token_credential + endpoint) for speech
# recognition, which the report says works: recognize a WAV file and print
# the result as JSON. SEED_ENDPOINT and SEED_INPUT come from the test.
import json
import os

import azure.cognitiveservices.speech as speechsdk
from azure.identity import AzureCliCredential

credential = AzureCliCredential()
speech_config = speechsdk.SpeechConfig(token_credential=credential, endpoint=os.environ["SEED_ENDPOINT"])
audio_config = speechsdk.audio.AudioConfig(filename=os.environ["SEED_INPUT"])
result = speechsdk.SpeechRecognizer(speech_config=speech_config, audio_config=audio_config).recognize_once()
print(json.dumps({
    "version": speechsdk.__version__,
    "reason": result.reason.name,
    "text": result.text,
    "error": result.cancellation_details.error_details if result.reason == speechsdk.ResultReason.Canceled else "",
}))

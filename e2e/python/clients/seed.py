# The program from Azure-Samples/cognitive-services-speech-sdk#2890 (the
# Python Speech SDK 1.45 synthesizes nothing with an Entra ID credential on a
# custom domain), as its author ran it, with three changes so that a test can
# run it: the endpoint comes from SEED_ENDPOINT instead of a real subdomain,
# the audio goes to the file SEED_WAV (no sound device here), and the last
# line prints what happened as JSON. The tests change nothing else, except
# the SpeechConfig line where they say so.
import json
import os

import azure.cognitiveservices.speech as speechsdk
from azure.identity import AzureCliCredential

credential = AzureCliCredential()
endpoint = os.environ["SEED_ENDPOINT"]
text = "Hello, this is a test"
speech_config = speechsdk.SpeechConfig(token_credential=credential, endpoint=endpoint)
speech_config.speech_synthesizer_language = "en-US"
speech_config.speech_synthesis_voice_name = 'en-US-AriaNeural'
audio_config = speechsdk.audio.AudioOutputConfig(filename=os.environ["SEED_WAV"])
speech_synthesizer = speechsdk.SpeechSynthesizer(speech_config=speech_config, audio_config=audio_config)
result = speech_synthesizer.speak_text_async(text).get()
if result.reason == speechsdk.ResultReason.SynthesizingAudioCompleted:
    print(f"Speech synthesized for text {text}")
elif result.reason == speechsdk.ResultReason.Canceled:
    cancellation_details = result.cancellation_details
    print(f"Speech synthesis canceled: {cancellation_details.reason}")
    if cancellation_details.reason == speechsdk.CancellationReason.Error:
        if cancellation_details.error_details:
            print(f"Error details: {cancellation_details.error_details}")

print(json.dumps({
    "version": speechsdk.__version__,
    "reason": result.reason.name,
    "audio_bytes": len(result.audio_data),
    "error": result.cancellation_details.error_details if result.reason == speechsdk.ResultReason.Canceled else "",
}))

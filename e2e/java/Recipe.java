// The Speech SDK for Java as an app uses it, with the one line the README
// gives: SpeechConfig.fromHost(new URI("ws://PROXY"), "dummy"). Synthesizes
// the text without a speaker (audio_config null), then recognizes a 16 kHz
// 16-bit mono WAV file, and prints one JSON line per result on stdout.
//
// Usage: java -cp 'target/lib/*' Recipe.java ws://127.0.0.1:PORT KEY TEXT WAVFILE

import com.microsoft.cognitiveservices.speech.*;
import com.microsoft.cognitiveservices.speech.audio.AudioConfig;
import java.net.URI;

public class Recipe {
    public static void main(String[] args) throws Exception {
        String host = args[0], key = args[1], text = args[2], wav = args[3];

        try (SpeechConfig config = SpeechConfig.fromHost(new URI(host), key);
             SpeechSynthesizer synthesizer = new SpeechSynthesizer(config, null);
             SpeechSynthesisResult result = synthesizer.SpeakTextAsync(text).get()) {
            String details = "";
            if (result.getReason() == ResultReason.Canceled) {
                details = SpeechSynthesisCancellationDetails.fromResult(result).getErrorDetails();
            }
            System.out.println(json("synthesis", result.getReason().name(), Integer.toString(result.getAudioData().length), details));
        }

        try (SpeechConfig config = SpeechConfig.fromHost(new URI(host), key);
             AudioConfig audio = AudioConfig.fromWavFileInput(wav)) {
            config.setSpeechRecognitionLanguage("en-US");
            try (SpeechRecognizer recognizer = new SpeechRecognizer(config, audio);
                 SpeechRecognitionResult result = recognizer.recognizeOnceAsync().get()) {
                String details = "";
                if (result.getReason() == ResultReason.Canceled) {
                    details = CancellationDetails.fromResult(result).getErrorDetails();
                }
                System.out.println(json("recognition", result.getReason().name(), result.getText(), details));
            }
        }
        System.exit(0); // the SDK's native threads would keep the JVM alive
    }

    static String json(String kind, String reason, String value, String details) {
        return "{\"kind\":" + quote(kind) + ",\"reason\":" + quote(reason) + ",\"value\":" + quote(value) + ",\"details\":" + quote(details) + "}";
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : (s == null ? "" : s).toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
                }
            }
        }
        return b.append('"').toString();
    }
}

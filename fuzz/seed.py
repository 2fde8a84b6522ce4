#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from fixtures/ (run from the repo root: python3 fuzz/seed.py).
Each seed is named after what it came from; libFuzzer adds what it finds next to them."""
import hashlib, json, pathlib

root = pathlib.Path(__file__).resolve().parent.parent
corpus = root / "fuzz" / "corpus"
webhooks = sorted(p for p in (root / "fixtures" / "webhooks").rglob("*") if p.suffix in (".json", ".txt"))

def put(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)

for path in webhooks:
    body = path.read_bytes()
    name = path.relative_to(root / "fixtures" / "webhooks").as_posix().replace("/", "_")
    if len(body) <= 16384:
        put("webhook_parse", name, body)
    secret = b"test-app-secret"
    for mode in (0, 1, 2):
        put("signature", f"{mode}_{name}", bytes([mode, len(secret)]) + secret + body[:4096])

# Send bodies: the auto-reply messages of the default rules, plus one of each other type.
rules = json.loads((root / "functions" / "text" / "default_rules.json").read_text())
sends = [dict(rule["reply"], messaging_product="whatsapp", to="5511999990000") for rule in rules["rules"]]
sends += [
    {"messaging_product": "whatsapp", "to": "+5511999990000", "type": "text", "text": {"body": "Olá!", "preview_url": True}},
    {"messaging_product": "whatsapp", "to": "5511999990000", "type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "c"}},
    {"messaging_product": "whatsapp", "to": "5511999990000", "type": "document", "document": {"id": "123", "filename": "r.pdf"}},
    {"messaging_product": "whatsapp", "to": "5511999990000", "type": "audio", "audio": {"id": "1", "voice": True}},
    {"messaging_product": "whatsapp", "to": "5511999990000", "type": "location", "location": {"latitude": -23.5, "longitude": "-46.6", "name": "n"}},
    {"messaging_product": "whatsapp", "to": "5511999990000", "type": "contacts", "contacts": [{"name": {"formatted_name": "Ana"}, "phones": [{"phone": "+551199"}]}]},
    {"messaging_product": "whatsapp", "to": "5511999990000", "type": "reaction", "reaction": {"message_id": "wamid.A", "emoji": "👍"}},
    {"messaging_product": "whatsapp", "to": "5511999990000", "type": "template", "template": {"name": "order_update", "language": {"code": "pt_BR"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]}},
    {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.A", "typing_indicator": {"type": "text"}},
    {"messaging_product": "whatsapp", "recipient_type": "group", "to": "Y2FwaV9n", "type": "text", "text": {"body": "hi"}, "context": {"message_id": "wamid.Q"}},
]
for send in sends:
    data = json.dumps(send, ensure_ascii=False).encode()
    put("send_validate", hashlib.sha1(data).hexdigest()[:16] + ".json", data)

# Media: the fixtures' first 4 KiB, and the signatures the sniffer knows.
for path in sorted((root / "fixtures" / "media").glob("*.*")):
    if path.suffix in (".jpg", ".pdf"):
        put("media_sniff", path.name, path.read_bytes()[:4096])
ogg = b"OggS\x00\x02" + bytes(22) + b"OpusHead\x01\x01"
magic = {
    "mp4": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00",
    "3gp": b"\x00\x00\x00\x18ftyp3gp5\x00\x00\x00\x00",
    "m4a": b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00",
    "webp_animated": b"RIFF\x24\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00",
    "webp": b"RIFF\x24\x00\x00\x00WEBPVP8 \x0a\x00\x00\x00\x00\x00\x00\x00",
    "ogg_opus": ogg,
    "amr": b"#!AMR\n\x3c",
    "aac": b"\xff\xf1\x50\x80\x02\x1f\xfc",
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "text": b"\xef\xbb\xbfplain text\n",
    "filename": b"../../etc/passwd\x00.pdf",
    "link": b"http://169.254.169.254/computeMetadata/v1/",
}
for name, data in magic.items():
    put("media_sniff", name, data)
print("seeded", {p.name: len(list(p.iterdir())) for p in sorted(corpus.iterdir())})

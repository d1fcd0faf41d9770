#!/usr/bin/python3
"""The seed's own download code (the Notary API document's full example,
lines 58-76), run against a plain URL: requests.get without stream=True,
iter_content(CHUNK), each chunk written to the file and fed to SHA-1.
Exits 1 when the SHA-1 is not the expected one.

    /usr/bin/python3 bench/seed.py URL PATH SHA1 [CHUNK]   (CHUNK: 1024)
"""
import hashlib
import sys

import requests

url, path, expect = sys.argv[1], sys.argv[2], sys.argv[3]
chunk_size = int(sys.argv[4]) if len(sys.argv) > 4 else 1024

response = requests.get(url)
response.raise_for_status()
sha1 = hashlib.sha1()
with open(path, 'wb') as fd:
    for chunk in response.iter_content(chunk_size=chunk_size):
        if chunk:  # filter out keep-alive new chunks
            fd.write(chunk)
            sha1.update(chunk)
if sha1.hexdigest() != expect:
    sys.exit("seed.py: SHA-1 mismatch")

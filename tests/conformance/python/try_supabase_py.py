"""supabase-py against the sandbox, as a new user would try it.

Run through the sandbox's ignored test, which starts a sandbox on a free port
and passes its address, keys and database URL in the environment:

    python3 -m venv /tmp/sbpy && /tmp/sbpy/bin/pip install supabase
    QUIRE_PYTHON=/tmp/sbpy/bin/python cargo test -p quire-sandbox --test api \
        -- --ignored supabase_py

Each step prints `ok <step>` or `FAIL <step>: <what happened>`; the exit code
is the number of failed steps. Two users: A acts, B must not see.
"""

import asyncio
import os
import subprocess
import sys
import uuid

from supabase import create_client, acreate_client

URL = os.environ["QUIRE_API_URL"]
ANON = os.environ["QUIRE_ANON_KEY"]
DB_URL = os.environ["QUIRE_DB_URL"]
failures = 0


def step(name, fn):
    global failures
    try:
        fn()
        print(f"ok {name}", flush=True)
    except Exception as e:  # report every step, whatever broke
        failures += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)


def user(tag):
    client = create_client(URL, ANON)
    email = f"{tag}-{uuid.uuid4().hex[:8]}@example.com"
    client.auth.sign_up({"email": email, "password": "correct horse battery"})
    session = client.auth.sign_in_with_password(
        {"email": email, "password": "correct horse battery"}
    ).session
    assert session and session.access_token, "no session"
    return client, session


state = {}


def sign_in():
    state["a"], state["a_session"] = user("a")
    state["b"], state["b_session"] = user("b")


def rest_select():
    rows = state["a"].table("documents").select("*").execute().data
    assert rows == [], rows


def storage():
    a, b = state["a"], state["b"]
    uid = state["a_session"].user.id
    # A file goes at the path of a document being uploaded, registered as
    # Quire's companion registers it (db/app/80_document_files.sql).
    key = subprocess.run(
        ["psql", DB_URL, "-qAtc",
         "insert into public.documents (owner_id, title, byte_size) "
         f"values ('{uid}', 'Manual', 1) returning storage_path"],
        check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[0]
    body = b"%PDF-1.4\n%supabase-py\n"
    a.storage.from_("documents").upload(key, body, {"content-type": "application/pdf"})
    signed = a.storage.from_("documents").create_signed_url(key, 60)
    url = signed.get("signedURL") or signed.get("signedUrl")
    assert url, signed
    import httpx

    got = httpx.get(url)
    assert got.status_code == 200 and got.content == body, (got.status_code, got.text[:200])
    try:
        b.storage.from_("documents").create_signed_url(key, 60)
    except Exception:
        pass
    else:
        raise AssertionError("B signed A's object")


async def realtime():
    uid = state["a_session"].user.id
    client = await acreate_client(URL, ANON)
    await client.auth.set_session(
        state["a_session"].access_token, state["a_session"].refresh_token
    )
    await client.realtime.set_auth(state["a_session"].access_token)
    got = asyncio.get_running_loop().create_future()
    subscribed = asyncio.get_running_loop().create_future()
    channel = client.channel(f"user:{uid}", {"config": {"private": True}})
    channel.on_broadcast("changed", lambda m: got.done() or got.set_result(m))

    def on_status(status, err):
        if not subscribed.done():
            subscribed.set_result((str(status), err))

    await channel.subscribe(on_status)
    status, err = await asyncio.wait_for(subscribed, 15)
    assert "SUBSCRIBED" in status, (status, err)
    subprocess.run(
        ["psql", DB_URL, "-qc",
         f"select realtime.send('{{\"n\":1}}'::jsonb, 'changed', 'user:{uid}', true)"],
        check=True,
    )
    message = await asyncio.wait_for(got, 15)
    assert "'n': 1" in str(message) or '"n": 1' in str(message), message
    await client.realtime.close()


step("sign in (sign_up + sign_in_with_password, two users)", sign_in)
if "a" in state:
    step("REST select (documents, RLS: A sees none yet)", rest_select)
    step("storage upload + signed URL (expiresIn) + download; B cannot sign A's", storage)
    step("realtime private channel + realtime.send broadcast", lambda: asyncio.run(realtime()))
sys.exit(failures)

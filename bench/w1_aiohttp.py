"""w1_aiohttp.py: benchmark W1 as a Python user would write it, as the anchors' SDKs do:
asyncio with one aiohttp session, CONCURRENCY tasks at a time.

usage: /usr/bin/python3 bench/w1_aiohttp.py BASE_URL TASKS CONCURRENCY OUTDIR PROMPT
Prints one JSON line: {"tasks":N,"ok":N,"cpu":s,"wall":s,"rss_kb":N}.
"""
import asyncio
import json
import os
import sys
import time

import aiohttp


def peak_rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


async def one(session, sem, base, n, outdir, body):
    async with sem:
        async with session.post(base + "/v1/videos/generations", json=body) as r:
            task_id = (await r.json())["data"][0]["task_id"]
        while True:
            async with session.get(base + "/v1/tasks/" + task_id) as r:
                data = (await r.json())["data"]
            if data["status"] == "completed":
                url = data["result"]["videos"][0]["url"][0]
                break
            if data["status"] not in ("pending", "processing"):
                return False
        path = "%s/aiohttp-%d.mp4" % (outdir, n)
        async with session.get(url) as r:
            if r.status != 200:
                return False
            with open(path + ".part", "wb") as f:
                async for chunk in r.content.iter_chunked(65536):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        os.rename(path + ".part", path)
        return True


async def main():
    base, ntasks, conc, outdir, prompt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    body = {"model": "pixverse-v6", "prompt": prompt, "duration": 5, "resolution": "540p"}
    w0, c0 = time.monotonic(), time.process_time()
    sem = asyncio.Semaphore(conc)
    conn = aiohttp.TCPConnector(limit_per_host=conc)
    headers = {"Authorization": "Bearer bench-key"}
    async with aiohttp.ClientSession(connector=conn, headers=headers) as session:
        results = await asyncio.gather(*(one(session, sem, base, n, outdir, body) for n in range(ntasks)))
    ok = sum(1 for r in results if r)
    print(json.dumps({"tasks": ntasks, "ok": ok, "cpu": time.process_time() - c0,
                      "wall": time.monotonic() - w0, "rss_kb": peak_rss_kb()}))
    return 0 if ok == ntasks else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

# Written by daydream (src/local/launcher.py, embedded in it); rewritten whenever it differs, so do
# not edit. Serves a GGUF model with llama.cpp's OpenAI-compatible HTTP server on 127.0.0.1 only,
# and exits on SIGTERM/SIGINT or when stdin reaches end of file (daydream closed it, or died; on
# Linux the kernel also kills it the moment daydream dies).
import argparse, os, signal, subprocess, sys, threading

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--ctx", type=int, default=4096)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--alias", default="local")
ap.add_argument("--cache-ram-mib", type=int, default=128)
ap.add_argument("--llama-server", help="run this llama-server binary instead of the embedded server")
a = ap.parse_args()

def die_with_launcher():
    # Linux: the kernel kills llama-server when this launcher dies (as daydream does for the launcher)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGINT, lambda *_: stop.set())

def watch_stdin():
    try:
        while sys.stdin.buffer.read1(4096):
            pass
    except Exception:
        pass
    stop.set()

threading.Thread(target=watch_stdin, daemon=True).start()

def leave(code):
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(code)  # no interpreter shutdown: the stdin thread may still be blocked in read

if a.llama_server:
    try:
        h = subprocess.run([a.llama_server, "--help"], capture_output=True, text=True, timeout=60)
        help_text = h.stdout + h.stderr
    except Exception as e:
        print(f"launcher: {a.llama_server} --help failed: {e}", file=sys.stderr, flush=True)
        leave(3)
    cmd = [a.llama_server, "--model", a.model, "--host", "127.0.0.1", "--port", str(a.port),
           "--ctx-size", str(a.ctx), "--threads", str(a.threads), "--threads-batch", str(a.threads),
           "--parallel", "1", "--alias", a.alias]
    if "--no-ui" in help_text:
        cmd.append("--no-ui")
    elif "--no-webui" in help_text:
        cmd.append("--no-webui")
    if "--cache-ram" in help_text:
        cmd += ["--cache-ram", str(a.cache_ram_mib)]
    print("launcher: running", " ".join(cmd), flush=True)
    child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             preexec_fn=die_with_launcher if sys.platform.startswith("linux") else None)
    while not stop.wait(0.2):
        if child.poll() is not None:
            print(f"launcher: llama-server exited with {child.returncode}", file=sys.stderr, flush=True)
            leave(3)
    child.terminate()
    try:
        child.wait(2.5)
    except subprocess.TimeoutExpired:
        child.kill(); child.wait()
    leave(0)

import xllamacpp as xlc

p = xlc.CommonParams()
p.model.path = a.model
p.hostnames = ["127.0.0.1"]          # a list; never anything but loopback
p.port = a.port
p.n_ctx = a.ctx
p.n_parallel = 1
p.cpuparams.n_threads = a.threads
p.cpuparams_batch.n_threads = a.threads
p.model_alias = {a.alias}            # a set
p.ui = False
p.cache_ram_mib = a.cache_ram_mib
try:
    server = xlc.Server(p)           # loads the model and starts listening (503 on /health until loaded)
except Exception as e:
    print(f"launcher: the server did not start: {e}", file=sys.stderr, flush=True)
    leave(3)
print("launcher: serving on", server.listening_address, flush=True)
while not stop.wait(0.5):
    pass
print("launcher: stopping", flush=True)
del server                           # waits for the server's loop to exit (well under 1 s)
leave(0)

"""The stage_runs workload's overhead rows, alone: 10,000 frames x 5 boxes put in chunks
of 100 and committed (memo on, then off) against one save_stage_output of the same
output, 3 repetitions each, in a fresh embedded store (fsync on). Prints JSON: per row,
(wall s, CPU s) of each repetition. Run with PYTHONPATH set to the head measured;
argv[1] is the round (it keeps versions distinct)."""
import random, time, sys, numpy as np, tempfile, os, json
import localckpt
d = tempfile.mkdtemp()
st = localckpt.open(os.path.join(d, "s"), create=True)
n = 10000
px = np.random.default_rng(0).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
tid = str(st.create_timeline("b.mp4", "b", px, codec="png").id)
def vals(rep):
    rnd = random.Random(n)
    return {i: {"rep": rep, "detections": [{"box": [rnd.uniform(0,1280), rnd.uniform(0,720), rnd.uniform(0,1280), rnd.uniform(0,720)], "label": rnd.choice(("player","ball","ref")), "score": rnd.random()} for _ in range(5)]} for i in range(n)}
rep = int(sys.argv[1])*100
def save():
    global rep; rep += 1; v = vals(rep); t=time.perf_counter(); c=time.process_time()
    st.save_stage_output(tid, None, "detect", {"frames": {str(s): x for s, x in v.items()}})
    return time.perf_counter()-t, time.process_time()-c
def run(memo):
    global rep; rep += 1; v = vals(rep); t=time.perf_counter(); c=time.process_time()
    r = st.begin_run(tid, None, "detect", version=f"rep{rep}", memo=memo)
    for i in range(0, n, 100):
        r.put({s: v[s] for s in range(i, min(i+100, n))})
    r.commit()
    return time.perf_counter()-t, time.process_time()-c
out = {"save": [], "memo": [], "nomemo": []}
for _ in range(3):
    out["save"].append(save()); out["memo"].append(run(True)); out["nomemo"].append(run(False))
print(json.dumps(out))

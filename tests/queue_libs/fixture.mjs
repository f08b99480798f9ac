// Test fixture: migrate graphile-worker and pg-boss with their own code, then leave jobs the way
// their own APIs and a worker that dies mid-job leave them. Usage: node fixture.mjs DSN
import { runMigrations, quickAddJob, run } from "graphile-worker";
import PgBoss from "pg-boss";

const dsn = process.argv[2];
const out = { graphile: {}, pgboss: {} };

// graphile-worker: its migrations, then jobs added through its API.
await runMigrations({ connectionString: dsn });
const gw = (id, payload, spec = {}) => quickAddJob({ connectionString: dsn }, id, payload, spec);
out.graphile.waiting = String((await gw("generate", { generationId: "w1" })).id);
out.graphile.future = String((await gw("generate", { generationId: "f1" }, { runAt: new Date(Date.now() + 3600e3) })).id);
out.graphile.dead_worker = String((await gw("hang", { generationId: "d1" })).id);
// A worker takes the "hang" job and dies with it locked (its process stops without finishing it).
let taken;
const picked = new Promise((resolve) => { taken = resolve; });
const runner = await run({
  connectionString: dsn, concurrency: 1, noHandleSignals: true, pollInterval: 100,
  taskList: { hang: async () => { taken(); await new Promise(() => {}); } },
  crontab: "",
});
await picked;
out.graphile.worker = "died";

// pg-boss: its migrations (start), a queue, a waiting job, and a job a consumer fetched and never finished.
const boss = new PgBoss({ connectionString: dsn, supervise: false, schedule: false });
await boss.start();
await boss.createQueue("generate");
out.pgboss.waiting = await boss.send("generate", { generationId: "w2" }, { expireInSeconds: 60 });
out.pgboss.dead_consumer = await boss.send("generate", { generationId: "d2" }, { expireInSeconds: 60, priority: 10 });
const [fetched] = await boss.fetch("generate", { batchSize: 1, priority: true });
out.pgboss.fetched = fetched ? fetched.id : null;
out.pgboss.finished = await boss.send("generate", { generationId: "c2" }, { priority: 5 });
const [again] = await boss.fetch("generate", { batchSize: 1, priority: true });
await boss.complete("generate", again.id);
await boss.stop({ graceful: false, wait: false });
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0); // the graphile worker dies here, its job still locked

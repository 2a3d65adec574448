/**
 * An in-memory dynalite (adapters/dynamodb/local.ts) in a process of its own, for the audit benchmark
 * (audit.ts): the table's work (dynalite, its in-memory level store) and the client's (marshalling, the
 * SDK, hashing the chains) then run on two cores instead of taking turns on one. Prints its endpoint on the
 * first line of stdout; ends when stdin closes.
 */
import { startLocalDynamo } from '../adapters/dynamodb/local.js';

const db = await startLocalDynamo();
process.stdout.write(`${db.endpoint}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void db.close().finally(() => process.exit(0));
});

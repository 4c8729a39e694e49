// Prints one plain closing line per runner and a total, in the form CI reads: "N passed, N failed".
import fs from 'node:fs';

const counts = { passed: 0, failed: 0, skipped: 0 };
let missing = false;
for (const file of process.argv.slice(2)) {
  if (!fs.existsSync(file)) {
    console.log(`${file}: missing (its runner did not finish)`);
    missing = true;
    continue;
  }
  const report = JSON.parse(fs.readFileSync(file, 'utf8'));
  // vitest: numPassedTests/numFailedTests; Playwright: stats.expected/unexpected/flaky/skipped
  const c = report.stats
    ? { passed: report.stats.expected + report.stats.flaky, failed: report.stats.unexpected, skipped: report.stats.skipped }
    : { passed: report.numPassedTests, failed: report.numFailedTests, skipped: report.numPendingTests + report.numTodoTests };
  const name = file.replace(/^.*\//, '').replace(/\.json$/, '');
  console.log(`${name}: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
  for (const key of Object.keys(counts)) counts[key] += c[key];
}
console.log(`total: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
process.exit(counts.failed > 0 || missing ? 1 : 0);

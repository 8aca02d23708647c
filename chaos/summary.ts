// Prints the figures and verdicts every chaos suite file saved (npm run chaos runs it after tap).
import { format, loadAll } from './report.js';

const all = loadAll();
if (all.length === 0) {
  console.log('no chaos results (.chaos/ is empty)');
} else {
  console.log('\n== chaos summary');
  for (const { suite, verdicts } of all) console.log(`\n[${suite}]\n${format(verdicts)}`);
}

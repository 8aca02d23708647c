// maskUrl: a URL with its secrets masked wherever it is printed or logged, however the user wrote it.
import t from 'tap';
import fc from 'fast-check';
import { maskUrl } from '../../../lib/shared/mask-url.js';

t.test('maskUrl masks every form of credential', async (t) => {
  t.equal(maskUrl('redis://:p@ss@host:6379/0'), 'redis://:***@host:6379/0', 'a password holding @');
  t.equal(maskUrl('redis://:pa/ss@host:6379'), 'redis://:***@host:6379', 'a password holding /');
  t.equal(maskUrl('https://ghp_token123@api.example.com/x'), 'https://***@api.example.com/x', 'a username-only token');
  t.equal(maskUrl('mongodb://user:a:b@h1:1,h2:2/db'), 'mongodb://user:***@h1:1,h2:2/db', 'a password holding :');
  t.equal(
    maskUrl('mongodb://h/?tls=true&tlsCertificateKeyFilePassword=k3y&authSource=admin'),
    'mongodb://h/?tls=true&tlsCertificateKeyFilePassword=***&authSource=admin',
    'a secret in the query',
  );
  t.equal(maskUrl('http://127.0.0.1:3000'), 'http://127.0.0.1:3000', 'nothing to mask');
  // any user name and password, written as a user would (unencoded): the password never shows
  const chars = fc.constantFrom(...'abcXYZ019@:/?#%!$&=+-_.~'.split(''));
  const run = fc.check(
    fc.property(
      fc.string({ unit: chars, maxLength: 8 }),
      fc.string({ unit: chars, minLength: 1, maxLength: 16 }),
      fc.constantFrom('redis', 'rediss', 'mongodb', 'mongodb+srv', 'http', 'https'),
      (user, password, scheme) => {
        const secret = `Q7${password}`;
        const masked = maskUrl(`${scheme}://${user}:${secret}@db.example:6379/0`);
        return !masked.includes(secret) && masked.endsWith('@db.example:6379/0');
      },
    ),
    { numRuns: 2000 },
  );
  t.notOk(run.failed, `a generated password never shows (${run.numRuns} cases): ${fc.stringify(run.counterexample)}`);
});

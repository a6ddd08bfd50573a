import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeScopes, parseScope, repositoryScope, scopesCover } from '../../../src/remote/auth/scope.js';

test('parseScope: name with host:port splits at the last colon', () => {
  assert.deepEqual(parseScope('repository:localhost:5000/org/repo:push,pull'), { type: 'repository', name: 'localhost:5000/org/repo', actions: ['pull', 'push'] });
  assert.deepEqual(parseScope('repository(plugin):x/y:pull'), { type: 'repository(plugin)', name: 'x/y', actions: ['pull'] });
  assert.deepEqual(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] });
  assert.equal(parseScope('nonsense'), undefined);
});

const mergeCases: Array<[string[][], string[]]> = [
  [[['repository:a:pull'], ['repository:a:push']], ['repository:a:pull,push']],
  [[['repository:a:push,pull'], ['repository:a:pull']], ['repository:a:pull,push']],
  [[['repository:b:pull', 'repository:a:pull,push'], []], ['repository:a:pull,push', 'repository:b:pull']],
  [[['repository:a:pull'], ['registry:catalog:*']], ['registry:catalog:*', 'repository:a:pull']],
  [[[], []], []],
];
for (const [input, want] of mergeCases) {
  test(`mergeScopes ${JSON.stringify(input)}`, () => assert.deepEqual(mergeScopes(...input), want));
}

test('scopesCover compares action sets', () => {
  assert.ok(scopesCover(['repository:a:pull,push'], ['repository:a:push,pull']));
  assert.ok(scopesCover(['repository:a:pull,push', 'repository:b:pull'], ['repository:b:pull']));
  assert.ok(!scopesCover(['repository:a:pull'], ['repository:a:pull,push']));
  assert.ok(!scopesCover(['repository:a:pull'], ['repository:b:pull']));
  assert.ok(scopesCover(['repository:a:*'], ['repository:a:delete']));
  assert.ok(scopesCover([], []));
  assert.equal(repositoryScope('x/y', 'push', 'pull', 'pull'), 'repository:x/y:pull,push');
});

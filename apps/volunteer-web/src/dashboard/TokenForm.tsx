import { useState, type FormEvent } from 'react';

export function TokenForm({ saved, onSave }: { saved: string; onSave(token: string): void }) {
  const [draft, setDraft] = useState(saved);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onSave(draft.trim());
  };
  const logOut = () => {
    setDraft('');
    onSave('');
  };
  return (
    <form className="row" onSubmit={submit}>
      <label className="wide">
        API token
        <input
          data-testid="token-input"
          type="password"
          autoComplete="off"
          placeholder="paste a token from `webpvm token create` or the coordinator's first start"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
        />
      </label>
      <button data-testid="token-save" type="submit">
        Save token
      </button>
      {saved && (
        <button data-testid="log-out" type="button" onClick={logOut}>
          Log out
        </button>
      )}
    </form>
  );
}

import { WebpvmError, type HostList, type JobStatus } from '@webpvm/vm-protocol';
import { useMemo, useState } from 'react';
import { ApiClient } from './api-client.ts';
import { errorText } from './error-text.ts';
import { HostsPanel } from './HostsPanel.tsx';
import { JobsTable } from './JobsTable.tsx';
import { ResultsPanel } from './ResultsPanel.tsx';
import { SubmitForm } from './SubmitForm.tsx';
import { TokenForm } from './TokenForm.tsx';
import { usePoll } from './use-poll.ts';

const TOKEN_KEY = 'webpvm.token';
const POLL_MS = 1000;

/**
 * The token lives in this tab's session storage: it survives a reload, not the tab, and no other
 * tab or worker reads it. Earlier versions kept it in local storage; it is forgotten there.
 */
function savedToken(): string {
  localStorage.removeItem(TOKEN_KEY);
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function Dashboard() {
  const [token, setToken] = useState(savedToken);
  const [jobs, setJobs] = useState<JobStatus[] | null>(null);
  const [hosts, setHosts] = useState<HostList | null>(null);
  const [jobsError, setJobsError] = useState<unknown>(null);
  const [hostsError, setHostsError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [refreshes, setRefreshes] = useState(0);
  const client = useMemo(() => (token ? new ApiClient(token) : null), [token]);
  const unauthorized = jobsError instanceof WebpvmError && jobsError.code === 'E_UNAUTHORIZED';

  const saveToken = (next: string) => {
    if (next) sessionStorage.setItem(TOKEN_KEY, next);
    else sessionStorage.removeItem(TOKEN_KEY);
    setJobsError(null);
    setJobs(null);
    setHosts(null);
    setToken(next);
  };

  // A rejected token is not retried every second: polling resumes when a new one is saved.
  usePoll(
    async () => {
      if (!client) return;
      const [jobList, hostList] = await Promise.allSettled([client.listJobs(), client.listHosts()]);
      if (jobList.status === 'fulfilled') {
        setJobs(jobList.value.jobs);
        setJobsError(null);
      } else {
        setJobsError(jobList.reason);
      }
      if (hostList.status === 'fulfilled') {
        setHosts(hostList.value);
        setHostsError(null);
      } else {
        setHostsError(errorText(hostList.reason));
      }
    },
    POLL_MS,
    client !== null && !unauthorized,
    `${token}:${refreshes}`,
  );

  const cancel = async (id: string) => {
    if (!client) return;
    try {
      await client.cancelJob(id);
      setActionError(null);
    } catch (e) {
      setActionError(errorText(e));
    }
    setRefreshes((n) => n + 1);
  };

  const selected = jobs?.find((j) => j.id === selectedId) ?? null;

  return (
    <main className="page">
      <header className="page-header">
        <h1>webpvm dashboard</h1>
        <a href="/">Volunteer page →</a>
      </header>

      <section className="card">
        <TokenForm saved={token} onSave={saveToken} />
        {!token && <p className="muted">Paste an API token to submit and follow jobs.</p>}
        {unauthorized && (
          <p className="error" role="alert">
            The coordinator rejected this token (401 E_UNAUTHORIZED). Paste a valid token and save it.
          </p>
        )}
      </section>

      {client && !unauthorized && (
        <>
          <section className="card">
            <h2>Submit a job</h2>
            <SubmitForm
              client={client}
              onSubmitted={(id) => {
                setSelectedId(id);
                setRefreshes((n) => n + 1);
              }}
            />
          </section>

          <section className="card">
            <h2>Jobs</h2>
            {jobsError !== null && !unauthorized && <p className="error">{errorText(jobsError)}</p>}
            {actionError && <p className="error">{actionError}</p>}
            {jobs ? (
              <JobsTable jobs={jobs} selectedId={selectedId} onOpen={setSelectedId} onCancel={cancel} />
            ) : (
              !jobsError && <p className="muted">Loading…</p>
            )}
          </section>

          {selected && <ResultsPanel key={selected.id} client={client} job={selected} />}

          <HostsPanel hosts={hosts} error={hostsError} />
        </>
      )}
    </main>
  );
}

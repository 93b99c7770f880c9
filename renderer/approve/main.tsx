import { createRoot } from 'react-dom/client';
import { ApprovePage } from './ApprovePage';
import { createApprovePageApi } from './api';
import './approve.css';

// The request is the last segment of /approve/<request id>.
const requestId = decodeURIComponent(window.location.pathname.split('/').filter(Boolean)[1] ?? '');
createRoot(document.getElementById('root')!).render(<ApprovePage api={createApprovePageApi()} requestId={requestId} />);

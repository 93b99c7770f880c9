import { createRoot } from 'react-dom/client';
import { AdminPage } from './AdminPage';
import { createAdminPageApi } from './api';

createRoot(document.getElementById('root')!).render(<AdminPage api={createAdminPageApi()} />);

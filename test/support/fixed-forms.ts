/** Test fixed forms (services/lib/process-forms.ts), made known as a process cache makes its own. */
import type { Process } from '../../services/lib/event-model.js';
import { addFixedForms } from '../../services/lib/process-forms.js';

const held = new Map<string, Process>();
addFixedForms((id) => held.get(id));

/** `fixed` serves the encoders as the fixed form of its exec_id from now on. */
export function holdFixedForm(fixed: Process): void {
  held.set(fixed.exec_id, fixed);
}
